"""One thread at a time through the first import of a heavy library.

SciPy, scikit-learn and skops are imported on first use, so that the API starts
without them. The twin's threads may reach them together: the alarm rules (the
learnt line's statistics) and live scoring (a model's file) both do once the
first models are live. Two threads importing packages that import each other can
each see the other's module half made (CPython breaks the import deadlock that
way), so every such first import goes through ``HEAVY_IMPORTS``.
"""

from __future__ import annotations

import threading

HEAVY_IMPORTS = threading.RLock()
