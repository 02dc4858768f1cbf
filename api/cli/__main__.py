"""``python -m api.cli``: the same entry point as the ``factory-twin`` script."""

import sys

from api.cli.main import main

# Guarded: a spawned child (a job's training) imports the main module again.
if __name__ == "__main__":
    sys.exit(main())
