"""``python -m api.cli``: the same entry point as the ``factory-twin`` script."""

import sys

from api.cli.main import main

sys.exit(main())
