"""The line learnt from its messages, against a plant that runs a hidden line file.

The plant runs the default line with documented changes the twin is not told of:
machining 12% slower, welding's MTBF halved and its MTTR doubled, inspection's
scrap doubled and every changeover 1.5 times as long. Its messages go through
the publisher (noise, JSON) and an ingest (decoding, the contract's checks) to a
``LineLearner``, which sees nothing else. After 72 simulated hours each learnt
parameter's 95% interval holds the hidden value (at least 90% of them: some miss
by chance), the changed ones' intervals leave the nominal values out, and
processing times are within 5% (median).
"""

from __future__ import annotations

import random
import statistics
import sys
from pathlib import Path
from typing import Any

import pytest
from feeding import feed_learner

from twin.config.line import LineConfig, load_config
from twin.learning.estimators import Estimate
from twin.learning.line import learn_line
from twin.learning.observer import LineLearner

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "bench"))
from calibration import hidden_line  # noqa: E402 - the benchmark's hidden line

HOURS = 72.0
SEED = 1


@pytest.fixture(scope="module")
def learnt() -> tuple[LineConfig, LineConfig, LineLearner]:
    nominal = load_config()
    hidden = hidden_line(nominal)
    return nominal, hidden, feed_learner(hidden, HOURS, SEED)[1]


def _truths(hidden: LineConfig, learner: LineLearner) -> list[tuple[str, float, Estimate]]:
    """(name, hidden value, learnt estimate) of every parameter the stream showed."""
    pairs: list[tuple[str, float, Estimate]] = []
    for station in hidden.stations:
        found = learner.estimates(station.id)
        for product, fit in found.processing_time.items():
            spec = station.processing_time_by_product.get(product, station.processing_time)
            pairs.append((f"{station.id} {product} time", spec.mean, fit.mean))
        failures = found.failures
        if station.failures is not None and failures is not None and failures.mtbf_s.n >= 5:
            pairs.append((f"{station.id} MTBF", station.failures.mtbf_s, failures.mtbf_s))
            assert failures.mttr_s is not None
            pairs.append((f"{station.id} MTTR", station.failures.mttr_s, failures.mttr_s))
        if station.setup is not None and found.setup is not None:
            pairs.append((f"{station.id} setup", station.setup.time.mean, found.setup.mean))
        jams, filed_jams = found.microstops, station.microstops
        if jams is not None and filed_jams is not None:
            between = jams.mean_between_s
            pairs.append((f"{station.id} jams apart", filed_jams.mean_between_s, between))
            pairs.append((f"{station.id} jam", filed_jams.duration.mean, jams.duration.mean))
        if station.process.quality is None and found.scrap is not None:
            pairs.append((f"{station.id} scrap", station.defect_probability, found.scrap))
    return pairs


def test_the_hidden_parameters_are_inside_the_learnt_intervals(learnt: Any) -> None:
    _, hidden, learner = learnt
    pairs = _truths(hidden, learner)
    assert len(pairs) >= 23, [name for name, _, _ in pairs]
    missed = [(name, truth, found) for name, truth, found in pairs if not found.covers(truth)]
    assert len(missed) <= 0.1 * len(pairs), missed
    times = [abs(found.value / truth - 1) for name, truth, found in pairs if name.endswith("time")]
    assert statistics.median(times) <= 0.05, times


def test_the_changed_parameters_are_told_from_the_nominal_ones(learnt: Any) -> None:
    nominal, hidden, learner = learnt
    machining = learner.estimates("machining")
    for fit in machining.processing_time.values():
        assert fit.mean.covers(
            next(s for s in hidden.stations if s.id == "machining").processing_time.mean
        )
        assert not fit.mean.covers(
            next(s for s in nominal.stations if s.id == "machining").processing_time.mean
        )
    welding = learner.estimates("welding").failures
    assert welding is not None
    assert welding.basis == "time"  # its failures strike idle or not, as its file says
    assert welding.mtbf_s.high < 21_600  # the nominal MTBF is outside the interval
    assert welding.mttr_s is not None
    assert welding.mttr_s.low > 480  # so is the nominal MTTR
    for station, spec in zip(nominal.stations, hidden.stations, strict=True):
        if spec.setup is None:
            continue
        setup = learner.estimates(station.id).setup
        assert setup is not None, station.id
        assert setup.mean.covers(spec.setup.time.mean), station.id
        assert station.setup is not None
        assert not setup.mean.covers(station.setup.time.mean), station.id


def test_the_failure_clock_is_the_one_each_station_runs_on(learnt: Any) -> None:
    _, hidden, learner = learnt
    for station in hidden.stations:
        failures = learner.estimates(station.id).failures
        if station.failures is None or failures is None or failures.mtbf_s.n < 5:
            continue
        assert failures.basis == station.failures.basis, station.id


def test_messages_without_a_station_or_of_other_kinds_are_ignored() -> None:
    learner = LineLearner()
    learner.observe(None, object())
    learner.observe("welding", object())
    assert learner.stations == []
    with pytest.raises(KeyError, match="no message from station 'cutting'"):
        learner.estimates("cutting")


def test_processing_times_are_learnt_in_the_line_files_terms_whatever_the_speed() -> None:
    """At speed 1.3 a part takes 1/1.3 of its time: the learnt time is the file's."""
    hidden = hidden_line()
    _, learner = feed_learner(hidden, 24.0, seed=2, speeds={"machining": 1.3})
    machining = next(s for s in hidden.stations if s.id == "machining")
    for fit in learner.estimates("machining").processing_time.values():
        assert fit.mean.covers(machining.processing_time.mean), fit.mean


def test_draws_of_the_learnt_line_spread_as_its_intervals_say(learnt: Any) -> None:
    """Each draw is a valid line file; a learnt parameter's drawn values fall inside
    its 95% interval about 95% of the time, centred on the learnt value; what was
    not learnt keeps the file's value in every draw."""
    nominal, _, learner = learnt
    found = learn_line(nominal, learner)
    by_name = {(p.station, p.parameter): p for p in found.parameters}
    mtbf = by_name[("welding", "failures.mtbf_s")]
    setup = by_name[("machining", "setup.time.mean_s")]
    rng = random.Random(7)
    draws = [LineConfig.model_validate(found.drawn(rng)) for _ in range(400)]
    stations = [{s.id: s for s in draw.stations} for draw in draws]
    mtbfs = [s["welding"].failures.mtbf_s for s in stations]  # type: ignore[union-attr]
    inside = sum(mtbf.low <= value <= mtbf.high for value in mtbfs) / len(mtbfs)
    assert 0.90 <= inside <= 0.99, inside
    assert statistics.median(mtbfs) == pytest.approx(mtbf.value, rel=0.1)
    assert len(set(mtbfs)) == len(mtbfs)
    setups = [s["machining"].setup.time.mean for s in stations]  # type: ignore[union-attr]
    inside = sum(setup.low <= value <= setup.high for value in setups) / len(setups)
    assert 0.90 <= inside <= 0.99, inside
    learnt_file = LineConfig.model_validate(found.line)
    kept = {s.id: s for s in learnt_file.stations}["inspection"].failures
    for station in stations:  # inspection never broke down: its file's failures stay
        assert station["inspection"].failures == kept
