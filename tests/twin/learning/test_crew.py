"""The wait for the repair crew and the repair itself, learnt apart.

A machine down whose crew is busy says so, and says when the crew reached it
(two ``state_changed`` from ``down`` to ``down``, ``twin.contract``'s
CREW_WAITING_REASON and CREW_ARRIVED_REASON). The learnt MTTR of a line whose
file has a crew is then the repair itself, as the file means it, and the wait
is a parameter of its own; a learnt line without a crew (no file) runs the
whole stay down instead, which is what its breakdowns cost.
"""

from __future__ import annotations

from feeding import feed_learner
from pydantic import BaseModel

from sensors.loopback import run_through_ingest
from twin.config.line import LineConfig, load_config
from twin.contract import CREW_ARRIVED_REASON, CREW_WAITING_REASON, StateChanged
from twin.learning.line import learn_line, learn_unfiled_line
from twin.learning.observer import LineLearner

MTTR = 900.0
CREW_REASONS = (CREW_WAITING_REASON, CREW_ARRIVED_REASON)


def crowded_line() -> LineConfig:
    """The default line with one technician and every station breaking down every
    hour of processing: machines often wait for him."""
    data = load_config().model_dump(mode="json")
    data["repair_crew"] = {"size": 1}
    for station in data["stations"]:
        station["failures"] = {"basis": "operation", "mtbf_s": 3600.0, "mttr_s": MTTR}
    return LineConfig.model_validate(data)


def test_the_repair_is_learnt_without_the_wait_for_the_crew() -> None:
    config = crowded_line()
    twin, learner = feed_learner(config, 48.0, seed=2)
    learnt = learn_line(config, learner)
    found = {(p.station, p.parameter): p for p in learnt.parameters}
    waits = []
    for station in config.stations:
        mttr = found[station.id, "failures.mttr_s"]
        assert mttr.low <= MTTR <= mttr.high, mttr
        assert mttr.detail is not None
        assert mttr.detail.startswith("repair only")
        wait = found[station.id, "failures.crew_wait_s"]
        assert wait.nominal is None  # not a line-file field
        waits.append(wait.value)
        failures = learner.estimates(station.id, processing=False).failures
        assert failures is not None
        assert failures.down_s is not None
    assert max(waits) > 60.0  # one technician for five stations: someone waited
    # Without a file the learnt line has no crew: its MTTR is the whole stay down.
    unfiled = learn_unfiled_line(twin.view(), learner)
    by_id = {s.id: s for s in LineConfig.model_validate(unfiled.line).stations}
    for station in config.stations:
        failures = learner.estimates(station.id, processing=False).failures
        assert failures is not None
        assert failures.down_s is not None
        learnt_failures = by_id[station.id].failures
        assert learnt_failures is not None
        assert learnt_failures.mttr_s == failures.down_s.value


def test_a_line_that_never_reports_its_crew_keeps_the_wait_in_the_mttr() -> None:
    """The same line, its crew's messages dropped on the way (a line that does not
    report them): the MTTR is the whole stay, says so, and is longer."""
    config = crowded_line()
    learner = LineLearner()

    def without_crew(station: str | None, message: BaseModel) -> None:
        if isinstance(message, StateChanged) and message.reason in CREW_REASONS:
            return
        learner.observe(station, message)

    run_through_ingest(config, 48.0, 2, without_crew)
    _, told = feed_learner(config, 48.0, seed=2)
    learnt = {(p.station, p.parameter): p for p in learn_line(config, learner).parameters}
    apart = {(p.station, p.parameter): p for p in learn_line(config, told).parameters}
    assert not [key for key in learnt if key[1] == "failures.crew_wait_s"]
    longer = 0
    for station in config.stations:
        whole = learnt[station.id, "failures.mttr_s"]
        assert whole.detail is not None
        assert "crew waiting included" in whole.detail
        repair = apart[station.id, "failures.mttr_s"]
        assert whole.value >= repair.value
        longer += whole.value > repair.value
    assert longer >= 3  # most stations waited at least once
