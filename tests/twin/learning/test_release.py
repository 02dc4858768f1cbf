"""How parts enter the line, and how full its buffers got, learnt from the
first station's takes and the levels parts report.

The default line runs as filed (saturated), as a CONWIP loop of 6 parts, and as
an open line with Poisson arrivals, each through the publisher and an ingest;
the learner sees the messages only.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from feeding import feed_learner

from twin.config.line import LineConfig, load_config
from twin.learning.line import LINE, LearnedLine, learn_line, learn_unfiled_line


def _with_release(release: dict[str, Any], **station_changes: dict[str, Any]) -> LineConfig:
    data = load_config().model_dump(mode="json")
    data["release"] = {**data["release"], **release}
    for block in data["stations"]:
        block.update(station_changes.get(block["id"], {}))
    return LineConfig.model_validate(data)


OPEN_120 = {"policy": "open", "interarrival": {"distribution": "exponential", "mean_s": 120.0}}


def _line_parameters(learnt: LearnedLine) -> dict[str, Any]:
    return {p.parameter: p for p in learnt.parameters if p.station == LINE}


@pytest.fixture(scope="module")
def open_line() -> tuple[Any, Any]:
    return feed_learner(_with_release(OPEN_120), 48.0, seed=5)


def test_a_saturated_line_stays_saturated() -> None:
    nominal = load_config()
    _, learner = feed_learner(nominal, 24.0, seed=1)
    learnt = learn_line(nominal, learner)
    assert learnt.line["release"]["policy"] == "saturated"
    assert _line_parameters(learnt) == {}


def test_a_conwip_loop_is_found_with_the_parts_it_holds() -> None:
    hidden = _with_release({"policy": "conwip", "wip_cap": 6})
    twin, learner = feed_learner(hidden, 24.0, seed=2)
    # Against the file (saturated) and with no file at all.
    for learnt in (learn_line(load_config(), learner), learn_unfiled_line(twin.view(), learner)):
        release = learnt.line["release"]
        assert (release["policy"], release["wip_cap"]) == ("conwip", 6)
        cap = _line_parameters(learnt)["release.wip_cap"]
        assert (cap.low, cap.value, cap.high) == (6.0, 6.0, 6.0)
        assert cap.n >= 20
        assert LineConfig.model_validate(learnt.drawn(random.Random(1))).release.wip_cap == 6


def test_an_open_lines_arrivals_are_learnt_from_the_time_the_first_station_waits(
    open_line: tuple[Any, Any],
) -> None:
    _, learner = open_line
    filed = learn_line(_with_release(OPEN_120), learner)
    mean = _line_parameters(filed)["release.interarrival.mean_s"]
    assert mean.low <= 120.0 <= mean.high, mean
    assert mean.n >= 100
    assert not mean.drifted
    # The file says arrivals come twice as often: that is drift.
    twice = _with_release(
        {"policy": "open", "interarrival": {"distribution": "exponential", "mean_s": 60.0}}
    )
    assert _line_parameters(learn_line(twice, learner))["release.interarrival.mean_s"].drifted
    # Against the saturated file, the learnt line is open, with the mean it saw.
    learnt = learn_line(load_config(), learner)
    release = learnt.line["release"]
    assert release["policy"] == "open"
    assert release["interarrival"]["mean_s"] == pytest.approx(mean.value)
    drawn = LineConfig.model_validate(learnt.drawn(random.Random(2)))
    assert drawn.release.interarrival is not None


def test_buffers_never_show_more_than_they_hold_and_a_wrong_capacity_shows(
    open_line: tuple[Any, Any],
) -> None:
    _, learner = open_line
    plant = _with_release(OPEN_120)
    seen = {b.station: b for b in learn_line(plant, learner).buffers}
    assert set(seen) == {s.id for s in plant.stations}
    assert not any(b.contradicts for b in seen.values())
    for index, station in enumerate(plant.stations):
        assert seen[station.id].highest_level <= plant.buffer_capacity(index)
    # machining's buffer of 6 filled up; a file that says 3 is contradicted.
    assert seen["machining"].highest_level == 6
    wrong = _with_release(OPEN_120, machining={"input_buffer_capacity": 3})
    contradicted = {b.station for b in learn_line(wrong, learner).buffers if b.contradicts}
    assert contradicted == {"machining"}
