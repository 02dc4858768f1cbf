"""Where a benchmark's figures go: the JSON line on stdout, and a result file.

Every figure quoted in README.md or docs/ comes from a file in ``bench/results``
that a benchmark wrote (``docs/figures.toml`` says which figure comes from
which file; ``tests/test_figures.py`` checks the documents against them). A
quick run (``--quick``) prints its line but leaves the published file alone:
its figures are not the ones the documents quote.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def emit(name: str, figures: dict[str, Any], *, quick: bool = False) -> None:
    """Print ``figures`` as the benchmark's last line; keep them unless ``quick``."""
    line = json.dumps(figures)
    if not quick:
        record = {
            **figures,
            "measured_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
            "machine": {
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "arch": platform.machine(),
            },
        }
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"{name}.json"
        path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(line, flush=True)
