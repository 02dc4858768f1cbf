"""The defect model against the plain baseline, on the line and on a table.

Each run trains the line's defect model as ``factory-twin train`` does
(``models.training.train_models``: the split in time with its gaps, the variant
chosen on the calibration parts, calibration, the threshold) and, on the same
training parts, scikit-learn's ``HistGradientBoostingClassifier`` with its
defaults (the card's ``metrics.baseline``). Both are scored on the same latest
30% of the parts, never seen in training:

- the default line, 20 and 10 simulated days with setpoints explored every
  15 minutes, seeds 1 to 5 (``--quick``: 1 and 2), where the oracle (each part's
  true defect probability) gives the best ROC-AUC any model could reach;
- a generated predictive-maintenance table in a public dataset's layout
  (``examples/data/generate_pdm.py``, 10,000 parts), seeds 1 to 3, read with
  ``examples/data/pdm_sample.schema.yaml`` as a user's table is.

Headline (``ratio``): the worst, over the runs, of the model's PR-AUC and F1 as
a share of the baseline's (target 1.0: never worse than the library's defaults).
Beside it, the worst ROC-AUC share of the oracle's with 10 days of data (target
0.97).

    python bench/defect_vs_baseline.py [--quick]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from _results import emit
from _tables import update

from models.dataset.parts import from_simulation
from models.dataset.rows import PartDataset
from models.dataset.table import parse_table_schema, read_table
from models.registry.store import ModelRegistry
from models.training import TrainingOptions, train_models
from twin.config.line import load_config

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "examples" / "data"
TARGET = 1.0
ORACLE_TARGET = 0.97
EXPLORE_EVERY_S = 900.0
TABLE_ROWS = 10_000


def train(sources: dict[str, PartDataset], seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        registry = ModelRegistry(Path(folder) / "models")
        options = TrainingOptions(seed=seed, stations=False)
        train_models(sources, registry, options, report_dir=Path(folder) / "report")
        card = registry.get("defect", 1).card
    metrics, base = card["metrics"], card["metrics"]["baseline"]
    row = {
        "roc_auc": round(metrics["roc_auc"], 4),
        "pr_auc": round(metrics["pr_auc"], 4),
        "f1": round(metrics["f1"], 4),
        "baseline_roc_auc": round(base["roc_auc"], 4),
        "baseline_pr_auc": round(base["pr_auc"], 4),
        "baseline_f1": round(base["f1"], 4),
        "variant": metrics["variant"]["chosen"],
    }
    row["share_of_baseline"] = round(
        min(metrics["pr_auc"] / base["pr_auc"], metrics["f1"] / base["f1"]), 4
    )
    oracle = metrics.get("oracle_roc_auc")
    if oracle:
        row["oracle_roc_auc"] = round(oracle, 4)
        row["oracle_ratio"] = round(metrics["roc_auc"] / oracle, 4)
        # The best PR-AUC any model could reach on these test parts: how much room
        # the baseline leaves.
        row["oracle_pr_auc"] = round(metrics["oracle_pr_auc"], 4)
    return row


def table_parts(seed: int, folder: Path) -> PartDataset:
    spec = importlib.util.spec_from_file_location("generate_pdm", DATA / "generate_pdm.py")
    if spec is None or spec.loader is None:
        raise RuntimeError("examples/data/generate_pdm.py cannot be loaded")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    path = folder / f"pdm-{seed}.csv"
    generator.write_table(path, TABLE_ROWS, seed)
    schema = yaml.safe_load((DATA / "pdm_sample.schema.yaml").read_text("utf-8"))
    return read_table(path, parse_table_schema(schema, "pdm_sample.schema.yaml")).parts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="seeds 1 and 2 only")
    args = parser.parse_args()
    begun = time.perf_counter()
    seeds = [1, 2] if args.quick else [1, 2, 3, 4, 5]
    config = load_config()
    runs: dict[str, dict[str, Any]] = {}
    for days in (20, 10):
        for seed in seeds:
            parts = from_simulation(config, days * 24.0, seed, explore_every_s=EXPLORE_EVERY_S)
            row = train({"simulation": parts}, seed)
            runs[f"line {days} d seed {seed}"] = row
            print(f"line, {days} days, seed {seed}: {row}", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        for seed in seeds[:3]:
            row = train({"csv": table_parts(seed, Path(folder))}, seed)
            runs[f"table seed {seed}"] = row
            print(f"maintenance table, seed {seed}: {row}", flush=True)
    worst = min(row["share_of_baseline"] for row in runs.values())
    ten_days = [row["oracle_ratio"] for key, row in runs.items() if key.startswith("line 10 d")]
    figures = {
        "benchmark": "defect_vs_baseline",
        "ratio": worst,
        "target": TARGET,
        "met": worst >= TARGET,
        "oracle_ratio_10d_min": min(ten_days),
        "oracle_target": ORACLE_TARGET,
        "oracle_10d_seeds_met": sum(ratio >= ORACLE_TARGET for ratio in ten_days),
        "seeds": seeds,
        "runs": runs,
        "seconds": round(time.perf_counter() - begun, 1),
    }
    print(
        f"worst share of the baseline (PR-AUC, F1): {worst:.3f} (target >= {TARGET}); "
        f"10 days: ROC-AUC at least {min(ten_days):.3f} of the oracle's "
        f"({figures['oracle_10d_seeds_met']} of {len(ten_days)} seeds >= {ORACLE_TARGET})",
        flush=True,
    )
    emit("defect_vs_baseline", figures, quick=args.quick)
    if not args.quick:
        update("defect-vs-baseline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
