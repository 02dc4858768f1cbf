"""The twin state, message by message: what each kind of message changes in the
view, and what it must leave alone (a stale last will, a late heartbeat, a late
sample, a late state report).

Expected values come from the messages themselves: the times between state
changes, the parts counted, the PRU of each product the birth message gives.
"""

from __future__ import annotations

from itertools import count
from typing import Any

import pytest

from twin.contract import (
    SCHEMA_VERSION,
    CalendarDescription,
    LineDescription,
    LineStatus,
    PartFinished,
    PartStarted,
    PlannedStopDescription,
    StateChanged,
    StationDescription,
    StationState,
    Telemetry,
)
from twin.state.admission import Admission
from twin.state.line import TwinState
from twin.state.views import LiveScoringView
from twin.state.watermark import Watermark

SOURCE = "plant-line1-0001"
_seq = count()


def head(sim_time: float | None, source: str = SOURCE) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "ts_ms": 1_700_000_000_000 + int((sim_time or 0.0) * 1000),
        "seq": next(_seq),
        "source": source,
        "sim_time_s": sim_time,
    }


CALENDAR = CalendarDescription(
    period_h=24.0,
    start_at_h=0.0,
    clock_at_start_h=0.0,
    planned_downtime=[PlannedStopDescription(start_h=2.0, duration_h=1.0, reason="cleaning")],
)


def birth(source: str = SOURCE, **changes: Any) -> LineStatus:
    description = LineDescription(
        name="Brackets",
        stations=[
            StationDescription(
                id="saw",
                name="Saw",
                position=0,
                ideal_cycle_time_s=10.0,
                input_buffer_capacity=None,
                ideal_cycle_time_by_product_s={"large": 16.0},
            ),
            StationDescription(
                id="mill",
                name="Mill",
                position=1,
                ideal_cycle_time_s=20.0,
                input_buffer_capacity=4,
                machines=2,
            ),
        ],
        calendar=CALENDAR,
        telemetry_period_s=2.0,
    )
    fields: dict[str, Any] = {
        **head(0.0, source),
        "status": "online",
        "description": description,
        "paused": False,
        "speed_factor": 60.0,
        "speed_asked": 60.0,
    }
    fields.update(changes)
    return LineStatus(**fields)


def status(sim_time: float | None, source: str = SOURCE, **changes: Any) -> LineStatus:
    return LineStatus(**{**head(sim_time, source), "status": "online", **changes})


def changed(at: float, to: str, machine: int = 0, reason: str = "r") -> StateChanged:
    return StateChanged(
        **head(at),
        event="state_changed",
        machine=machine,
        from_state=None,
        to_state=to,  # type: ignore[arg-type]
        reason=reason,
    )


def started(
    at: float, part: int, level: int | None = None, product: str | None = None
) -> PartStarted:
    return PartStarted(
        **head(at), event="part_started", part_id=part, product=product, input_buffer_level=level
    )


def finished(
    at: float,
    part: int,
    result: str = "good",
    *,
    exits: bool = False,
    level: int | None = None,
    product: str | None = None,
    process: dict[str, float] | None = None,
) -> PartFinished:
    return PartFinished(
        **head(at),
        event="part_finished",
        part_id=part,
        product=product,
        result=result,  # type: ignore[arg-type]
        processing_time_s=5.0,
        exits_line=exits,
        output_buffer_level=level,
        process=process,
    )


def test_the_birth_message_describes_the_line_and_its_pace() -> None:
    twin = TwinState("site", "area", "line1")
    assert twin.apply_line_status(birth())
    view = twin.view()
    assert (view.name, view.status, view.paused) == ("Brackets", "online", False)
    assert (view.speed_factor, view.speed_asked) == (60.0, 60.0)
    assert view.calendar == CALENDAR
    assert [(s.id, s.name, s.position) for s in view.stations] == [
        ("saw", "Saw", 0),
        ("mill", "Mill", 1),
    ]
    assert view.stations[0].input_buffer is None
    assert view.stations[1].input_buffer is not None
    assert view.stations[1].input_buffer.capacity == 4
    said = twin.announcement()
    assert (said.status, said.paused, said.speed_factor, said.speed_asked) == (
        "online",
        False,
        60.0,
        60.0,
    )
    assert said.telemetry_period_s == 2.0
    # The first stream is not a restart.
    assert twin.streams == 0


def test_a_late_heartbeat_does_not_turn_the_pace_back_and_a_stale_will_changes_nothing() -> None:
    twin = TwinState("site", "area", "line1")
    twin.apply_line_status(birth())
    paused = status(100.0, paused=True, speed_factor=30.0, speed_asked=30.0)
    late = status(90.0, paused=False, speed_factor=60.0)
    late = late.model_copy(update={"seq": paused.seq - 1})
    assert twin.apply_line_status(paused)
    assert twin.apply_line_status(late)
    view = twin.view()
    assert (view.paused, view.speed_factor, view.speed_asked) == (True, 30.0, 30.0)
    # An earlier run's last will: refused, nothing changes, not even the update count.
    before, updates = twin.view(), twin.updates
    stale = LineStatus(**head(None, "plant-line1-0000"), status="offline")
    assert not twin.apply_line_status(stale)
    assert twin.view() == before
    assert twin.updates == updates
    # The live run's last will: offline, and an offline line is not paused.
    assert twin.apply_line_status(LineStatus(**head(None), status="offline"))
    view = twin.view()
    assert (view.status, view.paused) == ("offline", None)
    assert twin.updates == updates + 1


def test_a_new_source_starts_the_count_again() -> None:
    twin = TwinState("site", "area", "line1")
    twin.apply_line_status(birth())
    for event in (started(1.0, 0), finished(9.0, 0, exits=False, level=1)):
        assert twin.apply_event("saw", event)
    assert twin.view().stations[0].good == 1
    assert twin.apply_line_status(birth("plant-line1-0002"))
    assert twin.streams == 1
    assert twin.view().stations[0].good == 0
    # The same source again is the same stream; another one, another restart.
    assert twin.apply_line_status(birth("plant-line1-0002"))
    assert twin.streams == 1
    assert twin.apply_line_status(birth("plant-line1-0003"))
    assert twin.streams == 2


def test_each_machine_keeps_its_own_time_and_the_station_shows_the_most_productive() -> None:
    twin = TwinState("site", "area", "line1")
    twin.apply_line_status(birth())
    for event in (
        changed(0.0, "starved", machine=0, reason="waiting"),
        changed(0.0, "setup", machine=1, reason="tooling"),
        changed(30.0, "running", machine=1, reason="part 1"),
        changed(50.0, "running", machine=0, reason="part 2"),
        changed(90.0, "down", machine=1, reason="spindle"),
        changed(95.0, "blocked", machine=0, reason="full"),
        # A report older than the machine's state must not rewind it.
        changed(60.0, "starved", machine=0, reason="late"),
    ):
        assert twin.apply_event("mill", event)
    twin.apply_telemetry("mill", Telemetry(**head(120.0), temperature_c=40.0))
    mill = twin.view().stations[1]
    assert [(m.index, m.state, m.state_reason, m.state_since_s) for m in mill.machines] == [
        (0, "blocked", "full", 95.0),
        (1, "down", "spindle", 90.0),
    ]
    # Down is more productive than blocked (the plant's ranking): the headline.
    assert (mill.state, mill.state_reason, mill.state_since_s) == ("down", "spindle", 90.0)
    kpis = mill.kpis
    assert kpis.setup_time_s == 30.0
    assert kpis.actual_production_time_s == (90.0 - 30.0) + (95.0 - 50.0)
    assert kpis.starved_time_s == 50.0
    assert kpis.down_time_s == 120.0 - 90.0
    assert kpis.blocked_time_s == 120.0 - 95.0
    assert kpis.planned_busy_time_s == 2 * 120.0
    # Active periods (running, setup, maintenance, down): machine 1 from 0 on, still
    # active; machine 0 from 50 to 95.
    assert kpis.mean_active_period_s == pytest.approx(((120.0 - 0.0) + (95.0 - 50.0)) / 2)


def test_parts_are_counted_where_they_finish_and_the_line_where_they_leave() -> None:
    twin = TwinState("site", "area", "line1")
    twin.apply_line_status(birth())
    saw_events = [
        started(0.0, 0),
        finished(10.0, 0, level=1, product="large", process={"speed": 1.1}),
        started(10.0, 1),
        finished(20.0, 1, "scrap"),
        started(20.0, 2),
        finished(30.0, 2, level=2, process={"speed": 0.9, "wear": 0.2}),
        started(30.0, 3),
    ]
    for event in saw_events:
        assert twin.apply_event("saw", event)
    for event in (
        started(12.0, 0, level=0),
        finished(40.0, 0, exits=True),
        started(41.0, 2, level=0),
    ):
        assert twin.apply_event("mill", event)
    view = twin.view()
    saw, mill = view.stations
    assert (saw.started, saw.good, saw.scrap, saw.rework) == (4, 2, 1, 0)
    assert saw.current_part == 3
    assert saw.process == {"speed": 0.9, "wear": 0.2}
    assert (mill.started, mill.good, mill.current_part) == (2, 1, 2)
    # The mill's buffer: 2 after the saw's last hand-over (30 s), then 0 when the mill
    # took part 2 (41 s), the newest report.
    assert mill.input_buffer is not None
    assert mill.input_buffer.level == 0
    # Released 4 (the saw started parts 0-3), shipped 1, scrapped 1: WIP 2.
    assert (view.kpis.good, view.kpis.scrap, view.kpis.work_in_process) == (1, 1, 2)
    assert saw.kpis.produced == 3


def test_a_part_sent_back_is_rework_not_a_new_release() -> None:
    twin = TwinState("site", "area", "line1")
    twin.apply_line_status(birth())
    for event in (started(0.0, 5), finished(10.0, 5, "rework"), started(11.0, 5)):
        assert twin.apply_event("saw", event)
    view = twin.view()
    saw = view.stations[0]
    assert (saw.started, saw.good, saw.rework) == (2, 0, 1)
    assert view.kpis.rework == 1
    assert view.kpis.work_in_process == 1


def test_a_product_is_valued_at_its_own_pru() -> None:
    """Effectiveness = sum of the PRU of the parts made / APT: one large part (16 s)
    and one of the default product (10 s) in 40 s of running."""
    twin = TwinState("site", "area", "line1")
    twin.apply_line_status(birth())
    for event in (
        changed(0.0, "running"),
        started(0.0, 0, product="large"),
        finished(20.0, 0, level=1, product="large"),
        started(20.0, 1),
        finished(40.0, 1, level=2),
        changed(40.0, "starved"),
    ):
        assert twin.apply_event("saw", event)
    kpis = twin.view().stations[0].kpis
    assert kpis.actual_production_time_s == 40.0
    assert kpis.effectiveness == pytest.approx((16.0 + 10.0) / 40.0)


def test_a_late_sample_does_not_overwrite_newer_readings() -> None:
    twin = TwinState("site", "area", "line1")
    twin.apply_line_status(birth())
    twin.apply_telemetry("saw", Telemetry(**head(10.0), temperature_c=40.0, vibration_mm_s=2.0))
    twin.apply_telemetry("saw", Telemetry(**head(12.0), temperature_c=41.0))
    twin.apply_telemetry("saw", Telemetry(**head(11.0), temperature_c=99.0, power_kw=5.0))
    telemetry = twin.view().stations[0].telemetry
    assert telemetry is not None
    assert telemetry.sim_time_s == 12.0
    # The newest value of each sensor, the older one where the newest sample lacked it.
    assert (telemetry.temperature_c, telemetry.vibration_mm_s, telemetry.power_kw) == (
        41.0,
        2.0,
        None,
    )


def test_a_station_in_planned_downtime_shows_the_calendars_stop() -> None:
    """At 02:30 the calendar says "cleaning"; a station in planned downtime shows it,
    the others show none."""
    twin = TwinState("site", "area", "line1")
    twin.apply_line_status(birth())
    twin.apply_event("saw", changed(7200.0, "planned_downtime", reason="calendar"))
    twin.apply_event("mill", changed(7200.0, "starved", reason="waiting"))
    twin.apply_telemetry("saw", Telemetry(**head(9000.0), temperature_c=30.0))
    saw, mill = twin.view().stations
    assert saw.planned_stop == "cleaning"
    assert mill.planned_stop is None


def test_a_retained_state_seeds_the_clock_of_a_station_joined_mid_run() -> None:
    twin = TwinState("site", "area", "line1")
    twin.apply_line_status(birth())
    snapshot = StationState(**head(500.0), state="down", reason="spindle", since_sim_time_s=400.0)
    assert twin.apply_station_state("saw", snapshot)
    older = StationState(**head(450.0), state="running", reason="old", since_sim_time_s=300.0)
    assert twin.apply_station_state("saw", older)
    twin.apply_telemetry("saw", Telemetry(**head(600.0), temperature_c=30.0))
    twin.apply_telemetry("saw", Telemetry(**head(700.0), temperature_c=30.0))
    view = twin.view()
    saw = view.stations[0]
    # The state as retained, since when it began; its time counted over the twin's
    # window, which the first message of the live stream opened (a snapshot's time
    # is when its state began, not when the twin heard of it): never more time
    # down than the twin watched.
    assert (saw.state, saw.state_reason, saw.state_since_s) == ("down", "spindle", 400.0)
    assert view.kpis.observed_s == 700.0 - 600.0
    assert saw.kpis.down_time_s == 700.0 - 600.0


def _event(seq: int, at: float, to: str) -> StateChanged:
    """A state change with its place in the saw's event stream (seq from 0)."""
    return changed(at, to).model_copy(update={"seq": seq})


def _heartbeat(at: float, saw_events: int) -> LineStatus:
    return status(at, published_events={"saw": saw_events, "mill": 0}, published_telemetry={})


def test_events_beyond_the_heartbeat_wait_until_it_covers_them() -> None:
    """docs/mqtt.md, "Heartbeat and watermark": the figures are as of the line time
    every stream has arrived up to; a message beyond it is held, then counted."""
    twin = TwinState("site", "area", "line1")
    twin.apply_line_status(birth())
    assert twin.apply_event("saw", _event(0, 10.0, "running"))
    # No heartbeat yet: as of the newest message, the lag unknown.
    assert twin.lag()[:4] == (10.0, 10.0, None, None)
    twin.apply_line_status(_heartbeat(100.0, 1))
    assert twin.lag()[:5] == (100.0, 100.0, 0.0, 0, 0)
    assert twin.apply_event("saw", _event(1, 150.0, "down"))
    lag = twin.lag()
    assert (lag.as_of_s, lag.newest_s, lag.lag_s, lag.held) == (100.0, 150.0, 50.0, 1)
    view = twin.view()
    assert (view.sim_time_s, view.newest_sim_time_s, view.held_messages) == (100.0, 150.0, 1)
    assert (view.lag_s, view.lag_messages) == (50.0, 0)
    assert (view.kpis.as_of_s, view.kpis.lag_s, view.kpis.lag_messages) == (100.0, 50.0, 0)
    # The line's clock (its calendar) as of the watermark: 100 s after midnight.
    assert view.clock is not None
    saw = view.stations[0]
    assert saw.state == "running"
    assert saw.kpis.actual_production_time_s == 100.0 - 10.0
    # The heartbeat at 200 s covers the event: counted, nothing held.
    twin.apply_line_status(_heartbeat(200.0, 2))
    saw = twin.view().stations[0]
    assert twin.lag().held == 0
    assert (saw.state, saw.state_since_s) == ("down", 150.0)
    assert saw.kpis.actual_production_time_s == 150.0 - 10.0
    assert saw.kpis.down_time_s == 200.0 - 150.0
    # One published and not received yet: counted in messages.
    twin.apply_line_status(_heartbeat(250.0, 3))
    assert twin.lag().lag_messages == 1
    assert (twin.view().lag_messages, twin.view().kpis.lag_messages) == (1, 1)
    # A message beyond, then the live line's last will: all it sent is in.
    assert twin.apply_event("saw", _event(2, 300.0, "running"))
    assert twin.lag().held == 1
    twin.apply_line_status(LineStatus(**head(None), status="offline"))
    assert twin.lag().held == 0
    assert twin.view().stations[0].state == "running"


def test_wip_and_lead_time_follow_littles_law_on_the_twins_counts() -> None:
    """L = the time-average of WIP over the twin's clock; W = the WIP integral over
    the parts that left (docs/kpis.md), from the saw's releases and the mill's exits."""
    twin = TwinState("site", "area", "line1")
    twin.apply_line_status(birth())
    # Released at 0 and 10; part 0 leaves at 30, part 1 is scrapped at 50; clock to 60.
    for station, event in (
        ("saw", started(0.0, 0)),
        ("saw", started(10.0, 1)),
        ("mill", finished(30.0, 0, exits=True)),
        ("mill", finished(50.0, 1, "scrap")),
    ):
        assert twin.apply_event(station, event)
    twin.apply_telemetry("saw", Telemetry(**head(60.0), temperature_c=30.0))
    kpis = twin.view().kpis
    # WIP: 1 on [0, 10), 2 on [10, 30), 1 on [30, 50), 0 on [50, 60).
    area = 1 * 10 + 2 * 20 + 1 * 20
    assert kpis.observed_s == 60.0
    assert kpis.mean_wip == pytest.approx(area / 60.0)
    assert kpis.cycle_time_s == pytest.approx(area / 2)
    assert (kpis.good, kpis.scrap, kpis.work_in_process) == (1, 1, 0)
    assert twin.counters() == (1, 1, 2)


def test_every_scrap_and_rework_counts_and_a_hand_over_fills_the_next_buffer() -> None:
    twin = TwinState("site", "area", "line1")
    twin.apply_line_status(birth())
    for event in (
        started(0.0, 0),
        finished(5.0, 0, "scrap"),
        started(5.0, 1),
        finished(10.0, 1, "scrap"),
        started(10.0, 2),
        finished(15.0, 2, "rework"),
        started(15.0, 2),
        finished(20.0, 2, "rework"),
        started(20.0, 2),
        finished(25.0, 2, level=3),
    ):
        assert twin.apply_event("saw", event)
    view = twin.view()
    saw, mill = view.stations
    assert (saw.scrap, saw.rework, saw.good) == (2, 2, 1)
    assert (view.kpis.scrap, view.kpis.rework) == (2, 2)
    assert saw.current_part is None
    # The saw handed part 2 on into the mill's buffer, which then held 3 parts.
    assert mill.input_buffer is not None
    assert mill.input_buffer.level == 3


def test_a_quiet_telemetry_stream_holds_the_watermark_back() -> None:
    """The heartbeat names the mill's telemetry stream: until its sample arrives the
    saw's event waits; an event exactly at the watermark is not beyond it."""
    twin = TwinState("site", "area", "line1")
    twin.apply_line_status(birth())
    heartbeat = status(100.0, published_events={"saw": 1}, published_telemetry={"mill": 1})
    twin.apply_line_status(heartbeat)
    assert twin.lag().lag_messages == 2
    assert twin.apply_event("saw", _event(0, 10.0, "running"))
    assert twin.lag().held == 1
    assert twin.view().stations[0].state is None
    sample = Telemetry(**head(20.0), temperature_c=30.0).model_copy(update={"seq": 0})
    updates = twin.updates
    assert twin.apply_telemetry("mill", sample)
    assert twin.updates == updates + 1
    lag = twin.lag()
    assert (lag.as_of_s, lag.held, lag.lag_messages) == (100.0, 0, 0)
    assert twin.apply_event("saw", _event(1, 100.0, "down"))
    assert twin.lag().held == 0
    assert twin.view().stations[0].state == "down"


def test_a_stream_that_never_completes_lets_the_oldest_in_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Beyond MAX_HELD messages waiting, the oldest are applied past the watermark
    and counted (held_forced): the figures are then not all as of one time."""
    monkeypatch.setattr("twin.state.line.MAX_HELD", 3)
    twin = TwinState("site", "area", "line1")
    twin.apply_line_status(birth())
    twin.apply_line_status(_heartbeat(5.0, 0))
    for seq, (at, to) in enumerate([(10.0, "running"), (20.0, "down"), (30.0, "running"),
                                    (40.0, "blocked"), (50.0, "running")]):  # fmt: skip
        assert twin.apply_event("saw", _event(seq, at, to))
    lag = twin.lag()
    assert (lag.held, lag.held_forced) == (3, 2)
    saw = twin.view().stations[0]
    # The two oldest went in: running from 10, down from 20.
    assert (saw.state, saw.state_since_s) == ("down", 20.0)


def test_the_settle_every_th_message_held_lets_in_what_the_watermark_passed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The SETTLE_EVERY-th message held settles the twin without waiting for a
    heartbeat or a read: what the watermark has passed since goes in, in order, and
    only what lies beyond it counts against MAX_HELD (held_forced)."""
    monkeypatch.setattr("twin.state.line.SETTLE_EVERY", 2)
    monkeypatch.setattr("twin.state.line.MAX_HELD", 1)
    twin = TwinState("site", "area", "line1")
    twin.apply_line_status(birth())
    # At 100 s the saw had sent one event and the mill one sample.
    heartbeat = status(
        100.0, published_events={"saw": 1, "mill": 0}, published_telemetry={"mill": 1}
    )
    twin.apply_line_status(heartbeat)
    assert twin.apply_event("saw", _event(0, 10.0, "running"))
    # The mill's sample completes every stream up to 100 s; a sample settles nothing.
    sample = Telemetry(**head(20.0), temperature_c=30.0).model_copy(update={"seq": 0})
    assert twin.apply_telemetry("mill", sample)
    # The second message held settles: the event at 10 s goes in, and only the one
    # at 110 s is beyond the watermark, within MAX_HELD: none is forced.
    assert twin.apply_event("saw", _event(1, 110.0, "down"))
    assert twin.held_forced == 0
    lag = twin.lag()
    assert (lag.as_of_s, lag.held, lag.held_forced) == (100.0, 1, 0)
    saw = twin.view().stations[0]
    assert (saw.state, saw.state_since_s) == ("running", 10.0)


def test_a_burst_beyond_the_watermark_settles_once_every_settle_every_messages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Settling walks every stream of the line: a burst held beyond the watermark
    pays for it once per SETTLE_EVERY messages held, not once per message."""
    every = 3
    monkeypatch.setattr("twin.state.line.SETTLE_EVERY", every)
    walks = 0
    update = Watermark.update

    def counted(mark: Watermark) -> float | None:
        nonlocal walks
        walks += 1
        return update(mark)

    monkeypatch.setattr(Watermark, "update", counted)
    twin = TwinState("site", "area", "line1")
    twin.apply_line_status(birth())
    # No heartbeat after 5 s: the quiet mill's stream is known up to 5 s only, so
    # every event of the saw's after it is held.
    twin.apply_line_status(_heartbeat(5.0, 0))
    burst = 10
    settled_at = []
    for held in range(1, burst + 1):
        before = walks
        assert twin.apply_event("saw", _event(held - 1, 10.0 * held, "running"))
        if walks > before:
            settled_at.append(held)
    assert settled_at == [held for held in range(1, burst + 1) if held % every == 0]
    assert twin.lag().held == burst


def test_a_message_at_the_watermark_goes_in_at_once_and_is_never_forced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every stream has arrived up to the watermark inclusive: a message of exactly
    that time is not beyond it, so it neither waits nor counts against MAX_HELD
    (held_forced counts only what went in beyond the watermark)."""
    monkeypatch.setattr("twin.state.line.MAX_HELD", 1)
    twin = TwinState("site", "area", "line1")
    twin.apply_line_status(birth())
    twin.apply_line_status(_heartbeat(100.0, 1))
    assert twin.apply_event("saw", _event(0, 40.0, "running"))
    assert twin.lag().as_of_s == 100.0
    # The mill's event beyond the watermark waits and fills MAX_HELD.
    assert twin.apply_event("mill", changed(150.0, "down").model_copy(update={"seq": 0}))
    assert twin.apply_event("saw", _event(1, 100.0, "down"))
    assert twin.held_forced == 0
    lag = twin.lag()
    assert (lag.as_of_s, lag.held, lag.held_forced) == (100.0, 1, 0)
    saw = twin.view().stations[0]
    assert (saw.state, saw.state_since_s) == ("down", 100.0)


def test_a_sample_of_the_same_time_is_not_late_and_a_late_one_is_still_admitted() -> None:
    twin = TwinState("site", "area", "line1")
    twin.apply_line_status(birth())
    assert twin.apply_telemetry("saw", Telemetry(**head(10.0), temperature_c=40.0))
    assert twin.apply_telemetry("saw", Telemetry(**head(10.0), temperature_c=41.0))
    assert twin.apply_telemetry("saw", Telemetry(**head(9.0), temperature_c=42.0))
    telemetry = twin.view().stations[0].telemetry
    assert telemetry is not None
    assert telemetry.temperature_c == 41.0


def test_the_observed_span_runs_from_the_first_message_and_wip_to_now() -> None:
    """A twin that joins at 50 s observes from 50 s; the WIP still in the line at
    the end counts up to the newest message (Little's law, docs/kpis.md)."""
    twin = TwinState("site", "area", "line1")
    assert twin.view().kpis.observed_s == 0
    twin.apply_line_status(birth())
    assert twin.apply_event("saw", started(50.0, 0))
    assert twin.view().kpis.observed_s == 0
    assert twin.apply_event("saw", started(50.5, 1))
    kpis = twin.view().kpis
    # Half a second observed: WIP 1 for all of it, then 2 from its end.
    assert kpis.observed_s == 0.5
    assert kpis.mean_wip == pytest.approx(1.0)
    assert twin.apply_event("mill", finished(60.0, 0, exits=True))
    twin.apply_telemetry("saw", Telemetry(**head(70.0), temperature_c=30.0))
    kpis = twin.view().kpis
    # WIP 1 on [50, 50.5), 2 on [50.5, 60), 1 on [60, 70).
    area = 1 * 0.5 + 2 * 9.5 + 1 * 10
    assert kpis.observed_s == 20.0
    assert kpis.mean_wip == pytest.approx(area / 20.0)
    assert kpis.cycle_time_s == pytest.approx(area / 1)


def test_a_machine_sums_every_period_in_a_state_and_every_active_period() -> None:
    """Running twice, starved twice, a zero-length state; asked 0.5 s after the last
    change: the times are sums over the periods, the active periods counted one by
    one, the one still open included."""
    twin = TwinState("site", "area", "line1")
    twin.apply_line_status(birth())
    for at, to in (
        (0.0, "running"),
        (10.0, "starved"),
        (15.0, "running"),
        (35.0, "starved"),
        (40.0, "blocked"),
        (40.0, "down"),  # the same instant: the newer report wins
    ):
        assert twin.apply_event("saw", changed(at, to))
    twin.apply_telemetry("saw", Telemetry(**head(40.5), temperature_c=30.0))
    saw = twin.view().stations[0]
    assert (saw.state, saw.state_since_s) == ("down", 40.0)
    kpis = saw.kpis
    assert kpis.actual_production_time_s == 10.0 + 20.0
    assert kpis.starved_time_s == 5.0 + 5.0
    assert kpis.blocked_time_s == 0.0
    assert kpis.down_time_s == 0.5
    # Active: [0, 10), [15, 35) and [40, 40.5) still open.
    assert kpis.mean_active_period_s == pytest.approx((10.0 + 20.0 + 0.5) / 3)


# -- counters and admission ----------------------------------------------------
T0 = head(0.0)["ts_ms"]


def test_updates_count_each_admitted_message_once_and_no_refused_one() -> None:
    twin = TwinState("site", "area", "line1")
    admitted = [
        twin.apply_line_status(birth()),
        twin.apply_event("saw", started(1.0, 0)),
        twin.apply_event("saw", finished(9.0, 0, level=1)),
        twin.apply_station_state(
            "mill", StationState(**head(10.0), state="starved", reason="r", since_sim_time_s=5.0)
        ),
        twin.apply_telemetry("saw", Telemetry(**head(11.0), temperature_c=30.0)),
        # Refused: a station the birth does not describe.
        twin.apply_event("lathe", started(12.0, 1)),
        twin.apply_station_state(
            "lathe", StationState(**head(12.0), state="starved", reason="r", since_sim_time_s=5.0)
        ),
    ]
    assert admitted == [True] * 5 + [False] * 2
    assert twin.updates == 5
    assert twin.rejected()["unknown_station"] == 2


def test_a_line_files_stations_are_admitted_and_no_others() -> None:
    twin = TwinState("site", "area", "line1", stations=["saw"])
    assert twin.apply_telemetry("saw", Telemetry(**head(1.0), temperature_c=30.0))
    assert not twin.apply_telemetry("lathe", Telemetry(**head(2.0), temperature_c=30.0))
    assert twin.station_ids() == ["saw"]
    assert twin.rejected()["unknown_station"] == 1


def test_a_station_already_seen_stays_admitted_at_the_station_cap() -> None:
    twin = TwinState("site", "area", "line1", admission=Admission(max_stations=1))
    for at in (1.0, 2.0, 3.0):
        assert twin.apply_telemetry("a", Telemetry(**head(at), temperature_c=at))
    assert not twin.apply_telemetry("b", Telemetry(**head(4.0), temperature_c=4.0))
    assert twin.view().stations[0].telemetry.temperature_c == 3.0  # type: ignore[union-attr]
    assert twin.rejected()["unknown_station"] == 1


def test_a_repeated_birth_of_the_same_source_keeps_the_counts() -> None:
    # A broker hands the retained birth out again on reconnect: the same stream.
    twin = TwinState("site", "area", "line1")
    twin.apply_line_status(birth())
    twin.apply_event("saw", started(1.0, 0))
    twin.apply_event("saw", finished(9.0, 0, level=0))
    twin.apply_line_status(birth())
    saw = twin.view().stations[0]
    assert (saw.started, saw.good) == (1, 1)


def test_an_undescribed_station_admits_any_machine_below_the_cap() -> None:
    twin = TwinState("site", "area", "line1")
    assert twin.apply_event("saw", changed(1.0, "running", machine=1))
    assert [m.index for m in twin.view().stations[0].machines] == [1]


def test_the_birth_is_a_reference_for_a_wild_first_message() -> None:
    twin = TwinState("site", "area", "line1")
    twin.apply_line_status(birth())  # sim 0 at T0, 60 sim s per wall s
    # One wall second later, at most 600 s tolerance + 60 s of line time on.
    wild = started(100_000.0, 0).model_copy(update={"ts_ms": T0 + 1000})
    assert not twin.apply_event("saw", wild)
    assert twin.rejected()["future_time"] == 1
    # The since of a retained state is judged at the line's pace too.
    snapshot = StationState(
        **{**head(10.0), "ts_ms": T0 + 10_000}, state="down", reason="r", since_sim_time_s=5_000.0
    )
    assert not twin.apply_station_state("saw", snapshot)
    assert twin.rejected()["future_time"] == 2
    assert twin.updates == 1  # the birth alone


def test_a_last_will_is_never_paused_whatever_it_carries() -> None:
    twin = TwinState("site", "area", "line1")
    twin.apply_line_status(birth())
    twin.apply_line_status(LineStatus(**head(None), status="offline", paused=True))
    assert twin.view().paused is None


def test_a_heartbeat_counting_events_alone_still_holds_back_what_it_does_not_cover() -> None:
    twin = TwinState("site", "area", "line1")
    twin.apply_line_status(birth())
    first = changed(5.0, "running").model_copy(update={"seq": 0})
    assert twin.apply_event("saw", first)
    twin.apply_line_status(status(10.0, published_events={"saw": 1, "mill": 0}))
    later = changed(50.0, "starved").model_copy(update={"seq": 1})
    assert twin.apply_event("saw", later)
    assert twin.lag().held == 1


def test_a_twin_without_a_birth_announces_no_telemetry_period() -> None:
    assert TwinState("site", "area", "line1").announcement().telemetry_period_s is None


def test_a_newer_retained_state_moves_a_single_machine_on_but_not_a_multi_machine_station() -> None:
    twin = TwinState("site", "area", "line1")
    twin.apply_line_status(birth())
    twin.apply_event("saw", changed(100.0, "running"))
    for machine in (0, 1):
        twin.apply_event("mill", changed(100.0, "running", machine=machine))
    for station in ("saw", "mill"):
        snapshot = StationState(**head(200.0), state="down", reason="r", since_sim_time_s=200.0)
        assert twin.apply_station_state(station, snapshot)
    twin.apply_telemetry("saw", Telemetry(**head(300.0), temperature_c=30.0))
    saw, mill = twin.view().stations
    # The saw: running 100..200, down 200..300.
    assert (saw.state, saw.kpis.down_time_s) == ("down", 300.0 - 200.0)
    assert saw.kpis.actual_production_time_s == 200.0 - 100.0
    # The mill's machines report their own states: the snapshot changes neither.
    assert (mill.state, mill.kpis.down_time_s) == ("running", 0.0)
    assert mill.kpis.actual_production_time_s == 2 * (300.0 - 100.0)
    assert mill.kpis.machines == 2


def test_a_retained_state_of_the_same_moment_leaves_the_events_order_standing() -> None:
    """Two changes at one instant, running then blocked at 100 s, arrive in order on
    the event stream; the retained state of the first, of that same moment, comes
    later on its own topic. It is no newer than the machine's clock: the last event
    stands."""
    twin = TwinState("site", "area", "line1")
    twin.apply_line_status(birth())
    assert twin.apply_event("saw", changed(100.0, "running"))
    assert twin.apply_event("saw", changed(100.0, "blocked"))
    late = StationState(**head(100.0), state="running", reason="r", since_sim_time_s=100.0)
    assert twin.apply_station_state("saw", late)
    twin.apply_telemetry("saw", Telemetry(**head(160.0), temperature_c=30.0))
    saw = twin.view().stations[0]
    assert (saw.state, saw.state_since_s) == ("blocked", 100.0)
    assert saw.kpis.blocked_time_s == 160.0 - 100.0
    assert saw.kpis.actual_production_time_s == 0.0


def test_a_machine_back_in_a_state_adds_to_its_earlier_time_there() -> None:
    twin = TwinState("site", "area", "line1")
    twin.apply_line_status(birth())
    for at, to in ((0.0, "running"), (10.0, "starved"), (20.0, "running")):
        twin.apply_event("saw", changed(at, to))
    twin.apply_telemetry("saw", Telemetry(**head(30.0), temperature_c=30.0))
    kpis = twin.view().stations[0].kpis
    assert kpis.actual_production_time_s == (10.0 - 0.0) + (30.0 - 20.0)
    assert kpis.starved_time_s == 20.0 - 10.0


def test_a_reworked_part_shows_in_its_stations_kpis() -> None:
    twin = TwinState("site", "area", "line1")
    twin.apply_line_status(birth())
    twin.apply_event("saw", started(1.0, 0))
    twin.apply_event("saw", finished(9.0, 0, "rework"))
    kpis = twin.view().stations[0].kpis
    assert (kpis.rework, kpis.produced) == (1, 1)


def test_live_scoring_shows_per_station_and_every_new_result_reaches_the_json() -> None:
    twin = TwinState("site", "area", "line1")
    twin.apply_line_status(birth())
    twin.set_live_scoring(LiveScoringView(status="on"), {"saw": 0.25})
    saw, mill = twin.view().stations
    assert (saw.defect_risk, mill.defect_risk) == (0.25, None)
    assert b'"defect_risk":0.25' in twin.view_json()
    # No message between two results: the cached body must still follow them.
    twin.set_live_scoring(LiveScoringView(status="on"), {"saw": 0.5})
    body = twin.view_json()
    assert b'"defect_risk":0.5' in body
    assert b'"defect_risk":0.25' not in body


def test_without_a_pru_the_line_has_no_effectiveness() -> None:
    # No birth: the twin knows no ideal cycle time, so it cannot judge speed.
    twin = TwinState("site", "area", "line1")
    twin.apply_event("saw", changed(0.0, "running"))
    twin.apply_event("saw", started(1.0, 0))
    twin.apply_event("saw", finished(9.0, 0, exits=True))
    kpis = twin.view().kpis
    assert (kpis.effectiveness, kpis.oee) == (None, None)


def test_a_sub_second_pru_still_makes_its_station_the_constraint() -> None:
    fast = StationDescription(
        id="press", name="Press", position=0, ideal_cycle_time_s=0.5, input_buffer_capacity=None
    )
    twin = TwinState("site", "area", "line1")
    twin.apply_line_status(birth(description=LineDescription(name="Fast", stations=[fast])))
    twin.apply_event("press", changed(0.0, "running"))
    for part in range(10):
        twin.apply_event("press", started(part * 1.0, part))
        twin.apply_event("press", finished(part * 1.0 + 0.9, part, exits=True))
    twin.apply_telemetry("press", Telemetry(**head(10.0), temperature_c=30.0))
    # 10 parts of 0.5 s each in 10 s running.
    assert twin.view().kpis.effectiveness == 10 * 0.5 / 10.0


def test_the_bottleneck_needs_no_pru_only_the_state_changes() -> None:
    """The active-period method (docs/kpis.md) reads the state changes alone: a twin
    that has no description of the line, so no PRU, names the same bottleneck as
    one that has it."""
    described, bare = TwinState("site", "area", "line1"), TwinState("site", "area", "line1")
    described.apply_line_status(birth())
    for twin in (described, bare):
        for at, to in ((0.0, "running"), (5.0, "starved"), (10.0, "running"),
                       (15.0, "starved"), (20.0, "running")):  # fmt: skip
            assert twin.apply_event("saw", changed(at, to))
        assert twin.apply_event("mill", changed(0.0, "running"))
        assert twin.apply_telemetry("saw", Telemetry(**head(30.0), temperature_c=30.0))
    # Active periods up to 30 s: the saw's of 5, 5 and 10 s (mean 6.7 s), the
    # mill's one of 30 s, the longest: the others wait for the mill.
    assert described.view().kpis.bottleneck == "mill"
    kpis = bare.view().kpis
    assert kpis.bottleneck == "mill"
    # Without a PRU there is no design constraint.
    assert kpis.constraint is None


def test_a_retained_state_alone_tells_the_twin_the_lines_time() -> None:
    twin = TwinState("site", "area", "line1")
    snapshot = StationState(**head(500.0), state="down", reason="r", since_sim_time_s=400.0)
    assert twin.apply_station_state("saw", snapshot)
    view = twin.view()
    assert (view.sim_time_s, view.newest_sim_time_s) == (500.0, 500.0)


def test_before_a_heartbeat_is_covered_the_figures_are_as_of_the_first_message() -> None:
    twin = TwinState("site", "area", "line1")
    twin.apply_line_status(birth())
    assert twin.apply_event("saw", changed(5.0, "running").model_copy(update={"seq": 0}))
    # The heartbeat counts a mill event the twin has not received: nothing is complete.
    twin.apply_line_status(status(10.0, published_events={"saw": 1, "mill": 1}))
    assert twin.view().sim_time_s == 5.0


def _pass_one_part(twin: TwinState, route: list[tuple[str, float, float]], until: float) -> None:
    """Part 1 through ``route`` (station, start, finish), leaving at its last
    station; then a telemetry sample moves the twin's clock to ``until``."""
    for index, (station, start, finish) in enumerate(route):
        assert twin.apply_event(station, started(start, 1))
        assert twin.apply_event(station, finished(finish, 1, exits=index == len(route) - 1))
    assert twin.apply_telemetry(route[0][0], Telemetry(**head(until), temperature_c=30.0))


def test_without_the_first_station_known_the_lead_time_is_unknown_not_zero() -> None:
    """Little's law needs the parts released: the first station's starts. A twin
    without the line's description knows no first station, so it cannot tell WIP
    over time nor lead time: they are null, never a lead time of 0 s."""
    described, bare = TwinState("site", "area", "line1"), TwinState("site", "area", "line1")
    described.apply_line_status(birth())
    for twin in (described, bare):
        _pass_one_part(twin, [("saw", 0.0, 10.0), ("mill", 10.0, 20.0)], until=40.0)
    # One part, in the line from its release at 0 s to its exit at 20 s.
    kpis = described.view().kpis
    assert kpis.cycle_time_s == pytest.approx(20.0)
    assert kpis.mean_wip == pytest.approx(20.0 / 40.0)
    bare_kpis = bare.view().kpis
    assert bare_kpis.good == 1
    assert bare_kpis.cycle_time_s is None
    assert bare_kpis.mean_wip is None


def test_a_one_station_line_has_a_lead_time() -> None:
    """The first station is the one at position 0, whatever follows it: a line of a
    single station releases and ships at the same station, and Little's law holds."""
    line = birth().description
    assert line is not None
    single = line.model_copy(update={"stations": line.stations[:1]})
    twin = TwinState("site", "area", "line1")
    twin.apply_line_status(birth(description=single))
    _pass_one_part(twin, [("saw", 0.0, 10.0)], until=40.0)
    kpis = twin.view().kpis
    # One part in the line from 0 s to 10 s of a 40 s span.
    assert kpis.cycle_time_s == pytest.approx(10.0)
    assert kpis.mean_wip == pytest.approx(10.0 / 40.0)
