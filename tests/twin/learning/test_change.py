"""The learnt line follows a change within tens of parts, not days (rates of
rare events: within a few dozen events).

A plant runs the default line for a day; then machining's spindle wears and
every part takes 12% longer (the test scales the plant's draws: the twin sees
only the messages). The learner's estimate of machining's processing time
starts afresh at the change-point (``regime_start``): about 150 parts after it,
its interval holds the new time and leaves the old one out, and the learnt
line reports the drift. A line that did not change is estimated from its
whole window.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from sensors.loopback import LoopbackLine
from twin.config.line import LineConfig, load_config
from twin.contract import PartFinished
from twin.learning.estimators import Estimate, rate_regime_start, share_regime_start
from twin.learning.line import learn_line
from twin.learning.observer import LineLearner

SLOWER = 1.12


def one_product_line() -> LineConfig:
    """The default line making one product: each change-point is judged on the
    parts of one product, so one product keeps the count of parts plain."""
    data = load_config().model_dump()
    data["products"] = data["products"][:1]
    for station in data["stations"]:
        station["processing_time_by_product"] = {}
    return LineConfig.model_validate(data)


def _wear(line: LoopbackLine, station_id: str, factor: float) -> None:
    station: Any = line.plant.by_id[station_id]
    samplers = station.physics.samplers
    for product, draw in list(samplers.items()):
        samplers[product] = lambda draw=draw: draw() * factor


def test_the_estimate_follows_a_step_change_within_about_150_parts() -> None:
    config = one_product_line()
    nominal = {s.id: s for s in config.stations}["machining"].processing_time.mean
    learner = LineLearner()
    line = LoopbackLine(config, 5, learner.observe)
    line.run_until(24 * 3600.0)
    before = sum(len(t) for t in learner.processing_times("machining").values())
    _wear(line, "machining", SLOWER)
    # About 150 parts of machining after the change: three hours of the line.
    line.run_until(27.0 * 3600.0)
    times = learner.processing_times("machining")
    after = sum(len(t) for t in times.values())
    assert after < before  # the estimate rests on the new regime only
    assert 60 <= after <= 180, after
    estimate = learner.estimates("machining").processing_time
    for product, fit in estimate.items():
        assert fit.mean.covers(nominal * SLOWER), (product, fit.mean)
        assert not fit.mean.covers(nominal), (product, fit.mean)
    drifted = {(p.station, p.parameter) for p in learn_line(config, learner).drifted()}
    assert ("machining", "processing_time.mean_s") in drifted


def test_a_line_that_did_not_change_is_estimated_from_its_whole_window() -> None:
    config = one_product_line()
    learner = LineLearner()
    LoopbackLine(config, 5, learner.observe).run_until(26.5 * 3600.0)
    for station in config.stations:
        kept = learner.processing_times(station.id)
        with learner._lock:  # every part seen, for the comparison
            seen = {p: len(t) for p, t in learner._stations[station.id].times.items()}
        assert {p: len(t) for p, t in kept.items()} == seen, station.id
    drifted = learn_line(config, learner).drifted()
    assert drifted == [], [(p.station, p.parameter) for p in drifted]


@pytest.mark.parametrize("shift", [0.03])
def test_a_change_below_five_percent_is_averaged_not_split(shift: float) -> None:
    config = one_product_line()
    learner = LineLearner()
    line = LoopbackLine(config, 6, learner.observe)
    line.run_until(24 * 3600.0)
    _wear(line, "machining", 1 + shift)
    line.run_until(30 * 3600.0)
    with learner._lock:
        seen = sum(len(t) for t in learner._stations["machining"].times.values())
    kept = sum(len(t) for t in learner.processing_times("machining").values())
    assert kept == seen


def test_a_share_is_never_split_where_nothing_changed() -> None:
    rng = np.random.default_rng(11)
    splits = [
        share_regime_start(rng.random(5000) < share)
        for share in (0.005, 0.01, 0.03, 0.1)
        for _ in range(50)
    ]
    assert splits.count(0) == len(splits)


def test_the_scrap_estimate_follows_a_share_that_tripled() -> None:
    """A station scrapping 3% starts to scrap 9% (a worn fixture): within 600
    parts of the change the learner's share is that of the new regime, its
    interval leaving the old 3% out."""
    learner = LineLearner()
    rng = random.Random(5)

    def part(index: int, share: float) -> PartFinished:
        return PartFinished(
            schema_version="1.2",
            ts_ms=0,
            seq=index,
            source="test",
            sim_time_s=float(index),
            event="part_finished",
            part_id=index,
            result="scrap" if rng.random() < share else "good",
            processing_time_s=1.0,
            exits_line=False,
            output_buffer_level=None,
        )

    for index in range(3000):
        learner.observe("press", part(index, 0.03))
    before = learner.estimates("press", processing=False).scrap
    assert before is not None
    assert before.covers(0.03)
    for index in range(3000, 3600):
        learner.observe("press", part(index, 0.09))
    after = learner.estimates("press", processing=False).scrap
    assert after is not None
    assert after.covers(0.09), after
    assert not after.covers(0.03), after
    assert after.n < 1200  # the new regime's parts, not the window's


def _faster_events(line: LoopbackLine, station_id: str, factor: float) -> None:
    """The station's jams and breakdowns come ``factor`` times as often from now
    (the test reaches into the plant; the twin sees only the messages)."""
    station: Any = line.plant.by_id[station_id]
    for machine in station.machines:
        machine._jam_rate *= factor
        machine._failure_rate *= factor
        machine._time_to_jam = machine._jam_rng.expovariate(machine._jam_rate)
        machine._time_to_failure = machine._failure_rng.expovariate(machine._failure_rate)


def test_the_jam_rate_and_the_mtbf_follow_a_tripled_rate() -> None:
    """Machining jams every 30 min of processing and, here, breaks down every 30
    min of it (repairs of 2 min): two days of that, then both come three times as
    often (a worn fixture, a failing drive). A day later the learnt mean times
    between them are those of the new regime, on its events only, their intervals
    leaving the old values out; before the change, the whole run was one regime."""
    data = one_product_line().model_dump()
    machining = next(s for s in data["stations"] if s["id"] == "machining")
    machining["failures"] = {"basis": "operation", "mtbf_s": 1800.0, "mttr_s": 120.0}
    config = LineConfig.model_validate(data)
    learner = LineLearner()
    line = LoopbackLine(config, 3, learner.observe)
    line.run_until(48 * 3600.0)
    for estimate, total in _rates(learner, "machining"):
        assert estimate.n == total  # one regime: every event
        assert estimate.covers(1800.0), estimate
    _faster_events(line, "machining", 3.0)
    line.run_until(72 * 3600.0)
    for estimate, total in _rates(learner, "machining"):
        assert estimate.covers(600.0), estimate
        assert not estimate.covers(1800.0), estimate
        assert estimate.n < total  # the new regime's events, not the run's


def _rates(learner: LineLearner, station: str) -> list[tuple[Estimate, int]]:
    """The learnt MTBF and processing time between jams, each with the number of
    events (breakdowns, jams) seen in the whole run."""
    found = learner.estimates(station)
    assert found.failures is not None
    assert found.microstops is not None
    with learner._lock:
        state = learner._stations[station]
        return [
            (found.failures.mtbf_s, state.breakdowns),
            (found.microstops.mean_between_s, state.jams_seen),
        ]


def test_a_rate_is_never_split_where_nothing_changed() -> None:
    rng = np.random.default_rng(12)
    splits = [
        rate_regime_start(rng.exponential(3600.0, events))
        for events in (12, 40, 200, 1000)
        for _ in range(100)
    ]
    assert splits.count(0) == len(splits)


def test_a_rate_that_tripled_is_split_where_it_changed() -> None:
    rng = np.random.default_rng(13)
    found = []
    for _ in range(50):
        gaps = np.concatenate([rng.exponential(3.0, 60), rng.exponential(1.0, 80)])
        found.append(rate_regime_start(gaps))
    # Split near the 60th event nearly every time (a few events either side: the
    # first events of a new regime can pass for the old one's).
    near = [split for split in found if 50 <= split <= 70]
    assert len(near) >= 45, found
