"""The displayed defect risk is calibrated: on a line the training never saw, the
mean predicted risk of the live parts is the share that inspection failed.

Each template is trained as the twin's first start trains it
(``models.training.train_models`` on three days of history fed through the
plant's publisher, an ingest and the recorder, plus a designed experiment on
the nominal model), then scores three days of another seed's line in
micro-batches (``models.live.LiveScorer``, as the running twin does).

**Tolerance.** |mean risk - observed rate| <= 0.5 x observed + 3 standard errors
of the observed rate (binomial, over the scored parts). The relative half
allows for what the anchor cannot know (it is fitted on a few dozen defects
of the history), the standard errors for the sampling of the live parts. A
class-balanced model before calibration (the shipped one fitted here on the
same parts, the training and calibration parts the live model learnt from)
fails it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from feeding import feed_history

from models.dataset.parts import from_history, from_simulation
from models.dataset.splits import split_parts
from models.defect import make_defect_model
from models.live import LiveScorer
from models.registry.store import ModelRegistry
from models.training import TrainingOptions, explore_hours, train_models
from twin.config.line import load_config
from twin.history.store import SqliteStore

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

HOUR_MS = 3_600_000
HISTORY_HOURS = 72
LIVE_HOURS = 72
SETTLE_S = 1800.0
START_MS = 1_700_000_000_000


@pytest.mark.parametrize(
    ("template", "train_seed", "live_seed"),
    [(None, 21, 31), ("examples/lines/smt.yaml", 22, 32)],
    ids=["default", "smt"],
)
def test_the_live_risk_matches_the_live_defect_rate_on_a_line_never_seen(
    tmp_path: Path, template: str | None, train_seed: int, live_seed: int
) -> None:
    config = load_config(Path(__file__).parents[2] / template if template else None)
    stations = [station.id for station in config.stations]
    line = config.line.id

    history_store = SqliteStore(tmp_path / "history.sqlite3", retention_ms=None)
    live_store = SqliteStore(tmp_path / "live.sqlite3", retention_ms=None)
    try:
        feed_history(config, history_store, hours=HISTORY_HOURS, seed=train_seed, start_ms=START_MS)
        history = from_history(
            history_store, START_MS, START_MS + HISTORY_HOURS * HOUR_MS, stations=stations
        )
        experiment = from_simulation(
            config,
            explore_hours(len(history) / HISTORY_HOURS),
            train_seed,
            explore_every_s=900,
        )
        registry = ModelRegistry(tmp_path / "models")
        train_models(
            {"history": history, "simulation": experiment},
            registry,
            TrainingOptions(seed=train_seed, stations=False),
            report_dir=tmp_path / "report",
        )
        model, version = registry.load("defect")
        assert version.card["gate"]["passed"], version.card["gate"]["reason"]
        names = version.card["data"]["feature_names"]

        feed_history(config, live_store, hours=LIVE_HOURS, seed=live_seed, start_ms=START_MS)
        scorer = LiveScorer(
            live_store,
            line,
            stations,
            model,
            names,
            start_ms=START_MS,
            settle_s=SETTLE_S,
        )
        risks, labels = [], []
        for hour in range(1, LIVE_HOURS + 1):
            batch = scorer.step(START_MS + hour * HOUR_MS)
            if batch is None:
                continue
            risks.append(batch.risk)
            labels.append(batch.defect)
        assert scorer.errors == 0, scorer.last_error
        # The same live parts, scored by a class-balanced model before calibration.
        live = from_history(
            live_store, START_MS, START_MS + LIVE_HOURS * HOUR_MS, stations=stations
        ).align(names)
        # It is the shipped model, fitted on the parts the live one learnt from.
        options = TrainingOptions()
        learnt = split_parts(
            {"history": history, "simulation": experiment},
            options.test_fraction,
            options.calibration_fraction,
        ).learnt.align(names)
        assert version.card["data"]["learnt"]["rows"] == len(learnt)
        raw = make_defect_model(random_state=train_seed, class_weight="balanced")
        raw.fit(learnt.features, learnt.defect)
        balanced = float(raw.predict_proba(live.features)[:, 1].mean())
    finally:
        history_store.close()
        live_store.close()

    risk = np.concatenate(risks)
    defect = np.concatenate(labels)
    observed = float(defect.mean())
    tolerance = 0.5 * observed + 3 * np.sqrt(observed * (1 - observed) / len(defect))
    assert len(defect) > 500  # days of parts, not a handful
    assert 0 < observed < 0.2
    assert abs(float(risk.mean()) - observed) <= tolerance, (float(risk.mean()), observed)
    assert abs(balanced - observed) > tolerance, (balanced, observed)
