"""How well defects can be told apart at constant setpoints: the oracle on every shipped line.

At its default setpoints a line's defect probability hardly varies from part to
part, so even the oracle (each part's true defect probability, the best any
model can do) ranks defects little better than a coin. docs/models.md quotes
that as the reason the first training adds explored setpoints to the history.
This runs every shipped template (``twin/lines/default.yaml`` and
``examples/lines/*.yaml``) at its default setpoints, seed 1, through
``models.dataset.parts.from_simulation``: a week, or a day of bottling (over 100,000
parts a day), and keeps the oracle's ROC-AUC over all parts with the count of
defects it rests on. One run per line, one seed.

Run: ``.venv/bin/python bench/oracle_constant.py``: about a minute (bottling
makes over 100,000 parts a day).
Writes ``bench/results/oracle_constant.json``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from _results import emit
from sklearn.metrics import roc_auc_score

from models.dataset.parts import from_simulation
from twin.config.line import load_config

REPO = Path(__file__).resolve().parents[1]
LINES = [
    REPO / "twin" / "lines" / "default.yaml",
    *sorted((REPO / "examples" / "lines").glob("*.yaml")),
]
HOURS = {"bottling": 24.0}
WEEK_H = 7 * 24.0
SEED = 1


def main() -> int:
    begun = time.perf_counter()
    lines: dict[str, dict[str, float | int]] = {}
    for path in LINES:
        hours = HOURS.get(path.stem, WEEK_H)
        dataset = from_simulation(load_config(path), hours=hours, seed=SEED)
        if dataset.oracle_probability is None:
            raise SystemExit(f"{path}: the simulation gave no oracle probability")
        auc = float(roc_auc_score(dataset.defect, dataset.oracle_probability))
        lines[path.stem] = {
            "hours": hours,
            "parts": len(dataset.defect),
            "defects": int(dataset.defect.sum()),
            "oracle_roc_auc": round(auc, 3),
        }
        print(f"{path.stem}: oracle ROC-AUC {auc:.3f}, {lines[path.stem]}", flush=True)
    aucs = [float(line["oracle_roc_auc"]) for line in lines.values()]
    emit(
        "oracle_constant",
        {
            "benchmark": "oracle_constant",
            "ratio": max(aucs),
            "target": None,
            "seed": SEED,
            "lines": lines,
            "lowest": min(aucs),
            "highest": max(aucs),
            "seconds": round(time.perf_counter() - begun, 1),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
