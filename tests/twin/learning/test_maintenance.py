"""Tool wear and preventive maintenance, learnt from the parts' reported wear
(``process.wear``) and the stays in ``maintenance``.

The default line's machining wears its tool by 0.002 a part at speed 1 and is
maintained at 0.8 for about 900 s. The plant runs it, or a hidden change of it,
through the publisher and an ingest; the learner sees the messages only.
"""

from __future__ import annotations

import pytest
from feeding import feed_learner

from twin.config.line import LineConfig, load_config
from twin.learning.line import learn_line, learn_unfiled_line


def _wear(line: LineConfig, station: str) -> dict[str, object]:
    data = line.model_dump(mode="json")
    block = next(s for s in data["stations"] if s["id"] == station)
    wear: dict[str, object] = block["process"]["wear"]
    return wear


def _hidden(changes: dict[str, object], maintenance_s: float | None = None) -> LineConfig:
    data = load_config().model_dump(mode="json")
    machining = next(s for s in data["stations"] if s["id"] == "machining")
    machining["process"]["wear"].update(changes)
    if maintenance_s is not None:
        machining["process"]["wear"]["maintenance_time"] = {
            "distribution": "deterministic",
            "mean_s": maintenance_s,
        }
    return LineConfig.model_validate(data)


def test_the_files_maintenance_plan_is_recovered_and_not_called_drift() -> None:
    nominal = load_config()
    _, learner = feed_learner(nominal, 72.0, seed=3)
    learnt = learn_line(nominal, learner)
    found = {p.parameter: p for p in learnt.parameters if p.station == "machining"}
    for name, truth in (
        ("process.wear.per_part", 0.002),
        ("process.wear.preventive_at", 0.8),
        ("process.wear.maintenance_time.mean_s", 900.0),
    ):
        item = found[name]
        assert item.low <= truth <= item.high, item
        assert item.nominal == truth
        assert not item.drifted, item
    # The level lies between the wear before the last part and after it: one part's worth.
    level = found["process.wear.preventive_at"]
    assert level.high - level.low == pytest.approx(0.002, abs=2e-6)
    wear = _wear(LineConfig.model_validate(learnt.line), "machining")
    assert wear["preventive_at"] == pytest.approx(level.value)
    assert wear["speed_exponent"] == 1.5  # the file's: one speed cannot show it


def test_a_changed_maintenance_plan_is_found_and_called_drift() -> None:
    nominal = load_config()
    hidden = _hidden({"per_part": 0.003, "preventive_at": 0.6})
    _, learner = feed_learner(hidden, 72.0, seed=4)
    learnt = learn_line(nominal, learner)
    found = {p.parameter: p for p in learnt.parameters if p.station == "machining"}
    for name, truth in (("process.wear.per_part", 0.003), ("process.wear.preventive_at", 0.6)):
        item = found[name]
        assert item.low <= truth <= item.high, item
        assert item.drifted, item


def test_a_maintenance_lasts_what_it_lasts_even_when_a_planned_stop_follows() -> None:
    """A three-hour maintenance often ends inside a break or the night: the
    machine then stands for the planned stop, not for maintenance. Every stay in
    maintenance the stream shows is the three hours drawn, none longer."""
    hidden = _hidden({}, maintenance_s=3 * 3600.0)
    _, learner = feed_learner(hidden, 72.0, seed=2)
    maintenance = learner.estimates("machining").maintenance
    assert maintenance is not None
    seen = maintenance.time_seen
    assert seen is not None
    assert seen.n >= 3
    assert (seen.low, seen.value, seen.high) == pytest.approx((10800.0,) * 3)


def test_a_line_without_a_file_gets_its_maintenance_from_the_stream() -> None:
    twin, learner = feed_learner(load_config(), 72.0, seed=3)
    learnt = LineConfig.model_validate(learn_unfiled_line(twin.view(), learner).line)
    wear = _wear(learnt, "machining")
    assert wear["per_part"] == pytest.approx(0.002, abs=1e-6)
    assert 0.798 <= float(str(wear["preventive_at"])) <= 0.8
    assert wear["speed_exponent"] == 1.0
    # No other station reports wear, so none gets a maintenance plan.
    others = [s for s in learnt.stations if s.id != "machining"]
    assert all(s.process.wear is None for s in others)


def test_a_breakdown_that_cuts_a_changeover_or_a_maintenance_does_not_split_it() -> None:
    """A time-based failure strikes whatever the machine is doing: a changeover or
    a maintenance goes ``down`` and is taken up again once repaired. With failures
    every half hour, a quarter of the 600 s changeovers at painting and the 900 s
    maintenances at machining are cut; each is still one stay of what was drawn,
    the time down left out."""
    data = load_config().model_dump(mode="json")
    stations = {s["id"]: s for s in data["stations"]}
    stations["painting"]["failures"] = {"basis": "time", "mtbf_s": 1800.0, "mttr_s": 120.0}
    stations["machining"]["failures"] = {"basis": "time", "mtbf_s": 1800.0, "mttr_s": 120.0}
    stations["machining"]["process"]["wear"]["maintenance_time"] = {
        "distribution": "deterministic",
        "mean_s": 900.0,
    }
    _, learner = feed_learner(LineConfig.model_validate(data), 48.0, seed=5)
    setup = learner.estimates("painting").setup
    assert setup is not None
    assert setup.mean.n >= 20
    assert (setup.mean.low, setup.mean.value, setup.mean.high) == pytest.approx((600.0,) * 3)
    maintenance = learner.estimates("machining").maintenance
    assert maintenance is not None
    assert maintenance.time_seen is not None
    seen = maintenance.time_seen
    assert seen.n >= 3
    assert (seen.low, seen.value, seen.high) == pytest.approx((900.0,) * 3)
