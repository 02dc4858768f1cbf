"""The simulator against queueing theory: docs/validation.md's table, kept as a result file.

Runs ``examples/validation/theory_vs_simulation.py`` (seed 20261128, the
tests' settings; about a minute on 2 cores), keeps its rows and the count of
runs on which Little's law held, and writes the table in docs/validation.md.
Not a speed benchmark: ``ratio`` is the share of rows whose theory lies inside
the simulation's 95% interval, ``target`` none (about one row in twenty may
miss by chance alone).

Run: ``.venv/bin/python bench/validation.py``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import sys
import time
from pathlib import Path

from _results import emit
from _tables import update

COLUMNS = ("quantity", "theory", "simulation", "inside")
SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "validation" / "theory_vs_simulation.py"


def main() -> int:
    begun = time.perf_counter()
    spec = importlib.util.spec_from_file_location("theory_vs_simulation", SCRIPT)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {SCRIPT}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        module.main()
    rows = []
    held = runs = None
    for line in out.getvalue().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 4 and not line.startswith("| quantity"):
            rows.append(dict(zip(COLUMNS, cells, strict=True)))
        law = re.search(r"on (\d+) of (\d+) runs", line)
        if law:
            held, runs = int(law.group(1)), int(law.group(2))
    inside = sum(row["inside"] in ("yes", "within 1 part") for row in rows)
    emit(
        "validation",
        {
            "benchmark": "validation",
            "ratio": round(inside / len(rows), 3),
            "target": None,
            "seed": module.SEED,
            "rows": rows,
            "littles_law_held": held,
            "littles_law_runs": runs,
            "seconds": round(time.perf_counter() - begun, 1),
        },
    )
    update("validation")
    return 0


if __name__ == "__main__":
    sys.exit(main())
