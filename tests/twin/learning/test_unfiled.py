"""A line the twin has no file for, learnt from its messages alone.

The CNC cell (three mills as one station, three products in batches of 30,
changeovers, microstops, a repair crew) runs 72 simulated hours through the
publisher and an ingest. The learnt line takes the stations, machines, buffers
and calendar from the birth message and everything else from the stream; it
validates as a line file, has no nominal values, and names what it cannot
know. Its throughput is set beside the file's in bench/calibration.py; here,
what it is made of.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sensors.loopback import LoopbackLine
from twin.config.line import LineConfig, load_config
from twin.learning.line import UNFILED_LIMITS, learn_unfiled_line, release_batch_size, skeleton_line
from twin.learning.observer import LineLearner

REPO = Path(__file__).resolve().parents[3]
CNC = REPO / "examples" / "lines" / "cnc_cell.yaml"


@pytest.fixture(scope="module")
def cnc() -> tuple[LineConfig, LoopbackLine, LineLearner]:
    config = load_config(CNC)
    learner = LineLearner()
    line = LoopbackLine(config, 1, learner.observe)
    line.run_until(72 * 3600.0)
    return config, line, learner


def test_the_structure_comes_from_the_birth_message(
    cnc: tuple[LineConfig, LoopbackLine, LineLearner],
) -> None:
    config, line, learner = cnc
    learnt = LineConfig.model_validate(learn_unfiled_line(line.twin.view(), learner).line)
    assert learnt.line.id == config.line.id
    assert [s.id for s in learnt.stations] == [s.id for s in config.stations]
    for mine, filed in zip(learnt.stations, config.stations, strict=True):
        assert mine.machines == filed.machines, mine.id
        assert mine.input_buffer_capacity == filed.input_buffer_capacity, mine.id
    assert learnt.calendar is not None
    assert config.calendar is not None
    assert learnt.calendar.planned_downtime == config.calendar.planned_downtime


def test_products_mix_and_batches_are_learnt(
    cnc: tuple[LineConfig, LoopbackLine, LineLearner],
) -> None:
    config, line, learner = cnc
    learnt = skeleton_line(line.twin.view(), learner)
    mix = {p.id: p.mix for p in learnt.products}
    total = sum(p.mix for p in config.products)
    assert set(mix) == {p.id for p in config.products}
    # Whole batches of 30 come in a random order: about 14 batches in 72 h.
    for product in config.products:
        assert mix[product.id] == pytest.approx(product.mix / total, abs=0.2), product.id
    # Every run of one product seen whole is a whole number of batches.
    runs = learner.runs("saw")
    assert len(runs) >= 3
    assert all(run % config.release.batch_size == 0 for run in runs)
    assert learnt.release.batch_size == config.release.batch_size
    # The saw's products differ by more than 5%: a fit each; the mills' do not.
    by_id = {s.id: s for s in learnt.stations}
    assert set(by_id["saw"].processing_time_by_product) == {p.id for p in config.products}
    assert by_id["milling"].processing_time_by_product == {}


def test_every_parameter_is_learnt_without_a_nominal_value(
    cnc: tuple[LineConfig, LoopbackLine, LineLearner],
) -> None:
    config, line, learner = cnc
    found = learn_unfiled_line(line.twin.view(), learner)
    named = {(p.station, p.parameter): p for p in found.parameters}
    mills = named[("milling", "processing_time.mean_s")]
    assert mills.low <= 540.0 <= mills.high  # the file's 540 s, never told
    assert ("milling", "setup.time.mean_s") in named
    assert ("milling", "microstops.mean_between_s") in named
    assert ("milling", "failures.mtbf_s") in named
    assert all(p.nominal is None and p.ratio is None and not p.drifted for p in found.parameters)
    for limit in UNFILED_LIMITS:
        assert limit in found.not_learnt
    learnt = LineConfig.model_validate(found.line)
    milling = {s.id: s for s in learnt.stations}["milling"]
    assert milling.microstops is not None
    assert milling.setup is not None
    assert milling.failures is not None


def test_a_twin_that_knows_no_station_says_so() -> None:
    from twin.state.line import TwinState

    with pytest.raises(ValueError, match="stations"):
        skeleton_line(TwinState("s", "a", "l").view(), LineLearner())


def test_runs_without_a_common_batch_fall_back_to_the_mean_run() -> None:
    # Runs of 29, 31 and 30 share no divisor: the mean run of 30, times
    # 1 - sum(mix^2) = 0.5 for two products half and half, is 15.
    assert release_batch_size({"a": 45, "b": 45}, 90, 2, [29, 31, 30]) == 15
    # Too few runs seen whole for a divisor to mean anything.
    assert release_batch_size({"a": 60, "b": 60}, 120, 1, [60]) == 30
    assert release_batch_size({"a": 60, "b": 60}, 120, 3, [40, 20, 60]) == 20
