"""Live scoring on history fed through the real publisher, ingest and recorder.

A model trained on the first 36 hours of ``mqtt_history`` scores the rest in
micro-batches of uneven length, as the running twin would; every check is
against an independent computation on the same store (a one-shot
``from_history``, scikit-learn's metrics).
"""

from __future__ import annotations

import itertools
import random
import time
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pytest
from sklearn.metrics import precision_score, recall_score
from sklearn.pipeline import Pipeline

from models.dataset.parts import from_history
from models.dataset.rows import PartDataset
from models.defect import make_defect_model
from models.live import LiveScorer, ScoredBatch
from models.scoring_loop import ScoringLoop
from twin.history.points import HistoryStore
from twin.state.line import TwinState

if TYPE_CHECKING:
    from tests.models.conftest import FedHistory

pytestmark = pytest.mark.usefixtures("one_thread")

HOUR_MS = 3_600_000
TRAIN_HOURS = 24
LIVE_HOURS = 24
SETTLE_S = 2 * 3600.0
WINDOW = 150


class Recording:
    """A fitted model that keeps the rows it was asked to score."""

    def __init__(self, model: Pipeline) -> None:
        self.model = model
        self.classes_ = model.classes_
        self.rows: list[np.ndarray] = []

    def predict_proba(self, features: np.ndarray) -> Any:
        self.rows.append(features)
        return self.model.predict_proba(features)


class Broken:
    classes_ = np.array([0, 1])

    def predict_proba(self, features: np.ndarray) -> Any:
        raise RuntimeError("model exploded")


def _stations(fed: FedHistory) -> list[str]:
    return [station.id for station in fed.config.stations]


@pytest.fixture(scope="module")
def trained(mqtt_history: FedHistory) -> tuple[Pipeline, PartDataset]:
    fed = mqtt_history
    train = from_history(
        fed.store,
        fed.start_ms,
        fed.start_ms + TRAIN_HOURS * HOUR_MS,
        line=fed.config.line.id,
        stations=_stations(fed),
    )
    model = make_defect_model(random_state=0, max_iter=100).fit(train.features, train.defect)
    return model, train


def due(fed: FedHistory, start_ms: int, now_ms: int, settle_s: float) -> PartDataset:
    """The parts due to be scored at ``now_ms``, as one read of the span shows them:
    those that left ``settle_s`` before the newest part in the store then (and
    before ``now_ms``)."""
    parts = from_history(
        fed.store, start_ms, now_ms, line=fed.config.line.id, stations=_stations(fed)
    )
    settled_ms = min(now_ms, int(parts.left_at_ms.max())) - int(settle_s * 1000)
    return parts.take(np.flatnonzero(parts.left_at_ms < settled_ms))


def _run(
    scorer: LiveScorer, fed: FedHistory, start_ms: int, until_ms: int
) -> tuple[list[ScoredBatch], PartDataset]:
    """Steps of 0.25 to 3 hours of history until ``until_ms``; the batches, and the
    parts due by the last step."""
    rng = random.Random(7)
    batches, now = [], start_ms
    while now < until_ms:
        now += int(rng.uniform(0.25, 3.0) * HOUR_MS)
        batch = scorer.step(now)
        if batch is not None:
            batches.append(batch)
    return batches, due(fed, start_ms, now, scorer.settle_s)


@pytest.fixture(scope="module")
def live_run(
    mqtt_history: FedHistory, trained: tuple[Pipeline, PartDataset]
) -> tuple[LiveScorer, Recording, list[ScoredBatch], PartDataset]:
    fed = mqtt_history
    model, train = trained
    recording = Recording(model)
    live_from = fed.start_ms + TRAIN_HOURS * HOUR_MS
    scorer = LiveScorer(
        fed.store,
        fed.config.line.id,
        _stations(fed),
        recording,
        train.feature_names,
        threshold=0.4,
        window=WINDOW,
        start_ms=live_from,
        settle_s=SETTLE_S,
    )
    batches, once = _run(scorer, fed, live_from, live_from + LIVE_HOURS * HOUR_MS)
    return scorer, recording, batches, once


def test_every_part_is_scored_once_as_one_batch_would(
    live_run: tuple[LiveScorer, Recording, list[ScoredBatch], PartDataset],
    trained: tuple[Pipeline, PartDataset],
) -> None:
    scorer, recording, batches, once = live_run
    model, train = trained
    assert len(batches) > 10  # micro-batches, not one
    part_ids = np.concatenate([batch.part_id for batch in batches])
    left_at = np.concatenate([batch.left_at_ms for batch in batches])
    # The same parts as one read of the whole span, each once, in the order they left.
    assert len(once) > 400
    np.testing.assert_array_equal(part_ids, once.part_id)
    np.testing.assert_array_equal(left_at, once.left_at_ms)
    np.testing.assert_array_equal(np.concatenate([b.defect for b in batches]), once.defect)
    assert scorer.parts_scored == len(once)
    assert scorer.errors == 0, scorer.last_error
    # The rows the model saw are the one-shot rows (up to the rounding of the
    # telemetry means: see test_micro_batches_give_bit_identical_rows) ...
    rows = np.vstack(recording.rows)
    expected = once.align(train.feature_names).features
    np.testing.assert_allclose(rows, expected, rtol=1e-9, atol=0)
    # ... and a part's risk is the model's probability of a defect for that row.
    risk = np.concatenate([batch.risk for batch in batches])
    np.testing.assert_array_equal(risk, model.predict_proba(rows)[:, 1])


class Lagging:
    """The store as an ingest running behind sees it: nothing after ``visible_ms``."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.visible_ms = 0

    def series(self, measurement: str | None = None) -> Any:
        return self.store.series(measurement)

    def query(
        self, measurement: str, field: str, start_ms: int, end_ms: int, **options: Any
    ) -> Any:
        return self.store.query(
            measurement, field, start_ms, min(end_ms, self.visible_ms), **options
        )


def test_a_lagging_ingest_holds_scoring_back_instead_of_skipping_parts(
    mqtt_history: FedHistory, trained: tuple[Pipeline, PartDataset]
) -> None:
    """The wall clock runs ahead of what has arrived: the rows scored must still be
    the rows of one read of the whole span, every part once."""
    fed = mqtt_history
    model, train = trained
    recording = Recording(model)
    lagging = Lagging(fed.store)
    live_from = fed.start_ms + TRAIN_HOURS * HOUR_MS
    scorer = LiveScorer(
        cast(HistoryStore, lagging),
        fed.config.line.id,
        _stations(fed),
        recording,
        train.feature_names,
        start_ms=live_from,
        settle_s=SETTLE_S,
    )
    now = live_from
    for hour in range(1, 9):
        lagging.visible_ms = live_from + hour * HOUR_MS
        now = lagging.visible_ms + 6 * HOUR_MS  # the wall clock, hours ahead of the data
        scorer.step(now)
    once = due(fed, live_from, lagging.visible_ms, SETTLE_S)
    assert len(once) > 100
    assert scorer.parts_scored == len(once)
    np.testing.assert_array_equal(
        np.vstack(recording.rows), once.align(train.feature_names).features
    )


def test_micro_batches_give_bit_identical_rows(
    live_run: tuple[LiveScorer, Recording, list[ScoredBatch], PartDataset],
    trained: tuple[Pipeline, PartDataset],
) -> None:
    _scorer, recording, batches, once = live_run
    model, train = trained
    np.testing.assert_array_equal(
        np.vstack(recording.rows), once.align(train.feature_names).features
    )
    risk = np.concatenate([batch.risk for batch in batches])
    expected = model.predict_proba(once.align(train.feature_names).features)[:, 1]
    np.testing.assert_array_equal(risk, expected)


def test_rolling_metrics_are_sklearns_on_the_last_parts(
    live_run: tuple[LiveScorer, Recording, list[ScoredBatch], PartDataset],
) -> None:
    scorer, _recording, batches, once = live_run
    risk = np.concatenate([batch.risk for batch in batches])[-WINDOW:]
    truth = once.defect[-WINDOW:]
    predicted = (risk >= scorer.threshold).astype(int)
    assert 0 < predicted.sum() < WINDOW  # precision and recall both defined
    assert 0 < truth.sum() < WINDOW
    view = scorer.view()
    assert view.status == "on"
    assert view.parts_in_window == WINDOW
    assert view.precision == pytest.approx(precision_score(truth, predicted))
    assert view.recall == pytest.approx(recall_score(truth, predicted))
    assert view.f1 is not None
    assert view.f1 == pytest.approx(
        2 * view.precision * view.recall / (view.precision + view.recall)
    )
    assert view.defect_risk == pytest.approx(risk.mean())
    assert view.defect_rate == pytest.approx(truth.mean())
    assert view.last_part_left_ms == int(once.left_at_ms[-1])
    # A binary model says how likely, not where: no per-station risk.
    assert scorer.defect_risk() == {}


def assert_station_risk(
    scorer: LiveScorer, station_model: Pipeline, features: np.ndarray
) -> dict[str, float]:
    """Each station's risk is the mean P(first failure there) over the last WINDOW parts."""
    probabilities = station_model.predict_proba(features)[-WINDOW:]
    classes = list(station_model.classes_)
    risk = scorer.defect_risk()
    assert set(risk) == set(scorer.stations)
    for station in scorer.stations:
        expected = probabilities[:, classes.index(station)].mean() if station in classes else 0.0
        assert risk[station] == pytest.approx(expected, rel=1e-6, abs=1e-9)
    return risk


@pytest.fixture(scope="module")
def station_model(trained: tuple[Pipeline, PartDataset]) -> Pipeline:
    """The defect pipeline fitted on where parts first failed (class "" for good ones)."""
    _model, train = trained
    return make_defect_model(random_state=0, max_iter=20).fit(train.features, train.defect_station)


def test_a_station_model_gives_each_stations_risk(
    mqtt_history: FedHistory, trained: tuple[Pipeline, PartDataset], station_model: Pipeline
) -> None:
    fed = mqtt_history
    _model, train = trained
    stations = _stations(fed)
    model = station_model
    live_from = fed.start_ms + TRAIN_HOURS * HOUR_MS
    scorer = LiveScorer(
        fed.store,
        fed.config.line.id,
        stations,
        model,
        train.feature_names,
        window=WINDOW,
        start_ms=live_from,
        settle_s=SETTLE_S,
    )
    assert scorer.station_model
    now = live_from + 8 * HOUR_MS
    batch = scorer.step(now)
    assert batch is not None
    assert len(batch.part_id) > WINDOW
    parts = due(fed, live_from, now, SETTLE_S)
    np.testing.assert_array_equal(batch.part_id, parts.part_id)
    risk = assert_station_risk(scorer, model, parts.align(train.feature_names).features)
    # A part's risk is that it fails somewhere: the stations' risks add up to it.
    assert sum(risk.values()) == pytest.approx(scorer.view().defect_risk)


def test_a_binary_model_beside_a_station_model_keeps_the_parts_risk(
    mqtt_history: FedHistory, trained: tuple[Pipeline, PartDataset], station_model: Pipeline
) -> None:
    """factory-twin train registers both: the binary model scores the part (its
    oracle-checked risk, precision and recall), the station model says where."""
    fed = mqtt_history
    binary, train = trained
    stations = _stations(fed)
    where = station_model
    live_from = fed.start_ms + TRAIN_HOURS * HOUR_MS
    scorer = LiveScorer(
        fed.store,
        fed.config.line.id,
        stations,
        binary,
        train.feature_names,
        window=WINDOW,
        start_ms=live_from,
        settle_s=SETTLE_S,
        where_model=where,
        threshold=0.4,
    )
    now = live_from + 8 * HOUR_MS
    batch = scorer.step(now)
    assert batch is not None
    parts = due(fed, live_from, now, SETTLE_S)
    features = parts.align(train.feature_names).features
    oracle = binary.predict_proba(features)[:, 1]
    np.testing.assert_allclose(batch.risk, oracle, rtol=1e-9)
    assert_station_risk(scorer, where, features)
    # Precision and recall over the window: the binary model's, at the threshold,
    # against inspection (sklearn's, on the oracle's risk).
    truth = parts.defect[-WINDOW:]
    predicted = (oracle[-WINDOW:] >= scorer.threshold).astype(int)
    assert 0 < predicted.sum() < WINDOW  # both defined
    assert 0 < truth.sum() < WINDOW
    view = scorer.view()
    assert view.precision == pytest.approx(precision_score(truth, predicted))
    assert view.recall == pytest.approx(recall_score(truth, predicted))
    with pytest.raises(ValueError, match="station model"):
        LiveScorer(
            fed.store, fed.config.line.id, stations, binary, train.feature_names, where_model=binary
        )


def test_a_failing_model_is_counted_and_the_loop_goes_on(
    mqtt_history: FedHistory, trained: tuple[Pipeline, PartDataset]
) -> None:
    fed = mqtt_history
    _model, train = trained
    live_from = fed.start_ms + TRAIN_HOURS * HOUR_MS
    scorer = LiveScorer(
        fed.store,
        fed.config.line.id,
        _stations(fed),
        Broken(),
        train.feature_names,
        start_ms=live_from,
        settle_s=SETTLE_S,
    )
    twin = TwinState("site", "area", fed.config.line.id)
    clock = itertools.count(live_from + 4 * HOUR_MS, HOUR_MS)
    loop = ScoringLoop(scorer, twin, period_s=0.01, clock=lambda: next(clock) / 1000)
    loop.start()
    try:
        deadline = time.monotonic() + 20
        while loop.steps < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert loop.steps >= 3
        assert loop.alive
    finally:
        loop.stop()
    assert scorer.errors >= 3
    assert scorer.parts_scored == 0
    assert scorer.parts_unscored > 0
    models = twin.view().models
    assert models.errors == scorer.errors
    assert models.last_error is not None
    assert "model exploded" in models.last_error
    assert models.precision is None
    assert models.recall is None


def test_windows_in_line_seconds_follow_the_speed_in_force(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A live line that paces itself changes its speed in force: windows given in
    line seconds last 1/speed history seconds at the speed in force of each step."""
    speed = [60.0]
    asked: list[tuple[float, float]] = []

    def from_history(store: Any, start_ms: int, end_ms: int, **options: Any) -> list[Any]:
        asked.append((options["sensor_window_s"], options["lookback_s"]))
        return []  # no parts left yet

    monkeypatch.setattr("models.live.from_history", from_history)
    scorer = LiveScorer(
        cast(HistoryStore, object()),
        "line",
        ["a"],
        Broken(),  # asked nothing: no parts
        ("x",),
        sensor_window_s=600.0,
        lookback_s=7200.0,
        settle_s=60.0,
        time_scale=lambda: 1.0 / speed[0],
    )
    for speed[0] in (60.0, 6.0, 1000.0):
        scorer.step(10**12)
    assert scorer.errors == 0, scorer.last_error
    assert asked == [pytest.approx((600.0 / s, 7200.0 / s)) for s in (60.0, 6.0, 1000.0)]
