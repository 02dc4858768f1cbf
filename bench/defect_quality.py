"""The defect model's quality: against the oracle, from MQTT-fed history, from an external CSV.

Recomputes, on one thread, what tests/models/test_defect.py asserts, and keeps
the figures docs/models.md quotes:

- Against the oracle: the default line, 20 simulated days with its setpoints
  explored every 15 minutes, seeds 1, 2 and 3; trained on the earlier 70% of the
  parts, tested on the latest 30%. ROC-AUC as a share of the oracle's (the true
  defect probability of each part) for the model as shipped
  (``make_defect_model``), for the same classifier without the ``QuantileBinner``
  step, and for scikit-learn's defaults (class weights balanced, as shipped).
  For seed 1 also PR-AUC, F1 at 0.5 and the paired bootstrap standard error of
  the ROC-AUC difference to the oracle (the test's leak guard). The CPU time of
  each fit (one thread) is kept beside it.
- MQTT-fed history against the simulation: 4 days of the default line (seed 2,
  setpoints every 15 minutes) through the plant's publisher, an ingest and the
  recorder into a SQLite store (``tests/feeding.py``, the feed the test uses),
  and the same run as a batch simulation; the ROC-AUC of a model from each.
  Then the signed difference (history minus simulation) over seeds 1 to 4 with
  setpoints every 30 minutes.
- An external CSV: the 8,000 generated parts of the test (a press and an oven,
  seed 8) with their true probability.

Run: ``.venv/bin/python bench/defect_quality.py``: a few minutes on one core.
Writes ``bench/results/defect_quality.json`` and the table in docs/models.md.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _results import emit, load_test_module
from _tables import update
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.feature_selection import VarianceThreshold
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

# The test's own code, so that the figures are the test's.
defect_test = load_test_module("defect_test", "models/test_defect.py")

from feeding import feed_history  # noqa: E402

from models.dataset.parts import from_csv, from_history, from_simulation  # noqa: E402
from models.dataset.rows import PartDataset  # noqa: E402
from models.defect import (  # noqa: E402
    DEFAULT_PARAMETERS,
    DefectEvaluation,
    defect_scores,
    evaluate,
    make_defect_model,
)
from twin.config.line import load_config  # noqa: E402
from twin.history.store import SqliteStore  # noqa: E402

ORACLE_SEEDS = (1, 2, 3)
ORACLE_DAYS = 20
EXPLORE_EVERY_S = 900.0
FED_HOURS = 4 * 24.0
FED_SEED = 2
START_MS = 1_700_000_000_000
CSV_ROWS = 8000
FED_SEEDS = (1, 2, 3, 4)
FED_SEEDS_EXPLORE_S = 1800.0


def models() -> dict[str, Pipeline]:
    def without_binner(**parameters: object) -> Pipeline:
        classifier = HistGradientBoostingClassifier(
            random_state=0, **{"class_weight": "balanced", **parameters}
        )
        return Pipeline([("drop_constant", VarianceThreshold()), ("classifier", classifier)])

    return {
        "library_defaults": without_binner(),
        "parameters_without_binner": without_binner(**DEFAULT_PARAMETERS),
        "shipped": make_defect_model(random_state=0),
    }


def fit(model: Pipeline, dataset: PartDataset) -> tuple[Pipeline, PartDataset]:
    train, test = dataset.time_split(0.3)
    return model.fit(train.features, train.defect), test


def figures(result: DefectEvaluation) -> dict[str, float | int | None]:
    def r(value: float | None) -> float | None:
        return None if value is None else round(value, 4)

    return {
        "parts": result.parts,
        "defects": result.defects,
        "roc_auc": r(result.roc_auc),
        "oracle_roc_auc": r(result.oracle_roc_auc),
        "oracle_ratio": r(result.oracle_ratio),
        "pr_auc": r(result.pr_auc),
        "oracle_pr_auc": r(result.oracle_pr_auc),
        "f1": r(result.f1),
    }


def fed_difference(seed: int, explore_every_s: float) -> dict[str, object]:
    """A model from ``FED_HOURS`` of MQTT-fed history against one from the same run simulated."""
    config = load_config()
    with tempfile.TemporaryDirectory(prefix="bench-defect-") as workdir:
        store = SqliteStore(Path(workdir) / "history.sqlite3", retention_ms=None)
        try:
            rejected = feed_history(
                config,
                store,
                hours=FED_HOURS,
                seed=seed,
                start_ms=START_MS,
                explore_every_s=explore_every_s,
            )
            history = from_history(store, START_MS, START_MS + int(FED_HOURS * 3_600_000))
        finally:
            store.close()
    simulated = from_simulation(
        config, FED_HOURS, seed, start_ms=START_MS, explore_every_s=explore_every_s
    )
    from_mqtt = evaluate(*fit(make_defect_model(random_state=0), history))
    from_sim = evaluate(*fit(make_defect_model(random_state=0), simulated))
    return {
        "rejected": rejected,
        "history": figures(from_mqtt),
        "simulation": figures(from_sim),
        "signed": round(from_mqtt.roc_auc - from_sim.roc_auc, 4),
        "difference": round(abs(from_mqtt.roc_auc - from_sim.roc_auc), 4),
    }


def main() -> int:
    begun = time.perf_counter()
    config = load_config()
    oracle: dict[str, dict[str, object]] = {}
    with threadpool_limits(limits=1):
        for seed in ORACLE_SEEDS:
            print(f"oracle: {ORACLE_DAYS} days, seed {seed} ...", flush=True)
            dataset = from_simulation(
                config, hours=ORACLE_DAYS * 24, seed=seed, explore_every_s=EXPLORE_EVERY_S
            )
            row: dict[str, object] = {"train_parts": len(dataset.time_split(0.3)[0].defect)}
            for name, model in models().items():
                started = time.process_time()
                fitted, test = fit(model, dataset)
                fit_cpu_s = time.process_time() - started
                result = evaluate(fitted, test)
                row[name] = figures(result) | {"fit_cpu_s": round(fit_cpu_s, 2)}
                if name == "shipped" and test.oracle_probability is not None:
                    row["bootstrap_se"] = round(
                        defect_test._paired_bootstrap_se(
                            test.defect, defect_scores(fitted, test), test.oracle_probability
                        ),
                        4,
                    )
                print(f"  {name}: {result.oracle_ratio:.3f} of the oracle", flush=True)
            oracle[str(seed)] = row

        print(f"MQTT-fed history: {FED_HOURS:g} h, seed {FED_SEED} ...", flush=True)
        fed = fed_difference(FED_SEED, EXPLORE_EVERY_S)
        fed_seeds = {}
        for seed in FED_SEEDS:
            print(f"  seed {seed}, setpoints every {FED_SEEDS_EXPLORE_S:g} s ...", flush=True)
            fed_seeds[str(seed)] = fed_difference(seed, FED_SEEDS_EXPLORE_S)["signed"]
        print(f"  difference {fed['difference']:.3f}", flush=True)

        with tempfile.TemporaryDirectory(prefix="bench-defect-") as workdir:
            path = Path(workdir) / "parts.csv"
            schema = defect_test._write_external_csv(path, rows=CSV_ROWS, seed=8)
            dataset = from_csv(path, schema)  # type: ignore[arg-type]
            external = {
                "rows": CSV_ROWS,
                **figures(evaluate(*fit(make_defect_model(random_state=0), dataset))),
            }
        print(f"external CSV: {external['oracle_ratio']} of the oracle", flush=True)

    shares = [float(oracle[str(s)]["shipped"]["oracle_ratio"]) for s in ORACLE_SEEDS]  # type: ignore[index]
    emit(
        "defect_quality",
        {
            "benchmark": "defect_quality",
            "ratio": round(float(np.min(shares)), 4),
            "target": 0.97,
            "oracle_days": ORACLE_DAYS,
            "oracle": oracle,
            "fed": fed,
            "fed_hours": FED_HOURS,
            "fed_seeds": fed_seeds,
            "fed_seeds_explore_s": FED_SEEDS_EXPLORE_S,
            "external_csv": external,
            "seconds": round(time.perf_counter() - begun, 1),
        },
    )
    update("defect-seeds", "defect-measured", "defect-fed-seeds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
