"""The sensor watch: where each reading should be, and alarms that name the sensor.

Lines run through the plant's publisher and an ingest in memory
(``sensors.loopback``), on seeds that neither ``bench/alarms.py`` (1-10, 101-102)
nor the other tests use, on the default line and the CNC cell (a station of three
mills; changeovers; other thermal constants). The first day is the clean history
the watch learns from; what is checked after it is what the watch guarantees:
faults found with the right sensor, and a line that only does what lines do
raising nothing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest
from pydantic import BaseModel

from models.anomaly.expected import LineExpectation, fit_expectations
from models.anomaly.sensor_truth import (
    Raised,
    SensorEpisode,
    poisson_upper,
    score_alarms,
)
from models.anomaly.watch import SensorAlarm, SensorWatch, WatchSettings
from sensors.loopback import LoopbackLine
from twin.config.line import LineConfig, SensorFault, load_config, with_changes, with_faults
from twin.contract import StateChanged, Telemetry
from twin.sim.physics import wear_per_part

ROOT = Path(__file__).resolve().parents[3]
LINES = {
    "default": ROOT / "twin/lines/default.yaml",
    "cnc_cell": ROOT / "examples/lines/cnc_cell.yaml",
}
SEEDS = {"default": 31, "cnc_cell": 32}
TRAIN_H = 24.0
HOURS = 48.0
Stream = list[tuple[str | None, BaseModel]]


def _run(
    config: LineConfig,
    seed: int,
    hours: float,
    *,
    at: dict[float, Callable[[LoopbackLine], None]] | None = None,
) -> Stream:
    stream: Stream = []
    line = LoopbackLine(config, seed, lambda s, m: stream.append((s, m)))
    for when in sorted(at or {}):
        line.run_until(when * 3600)
        (at or {})[when](line)
    line.run_until(hours * 3600)
    return stream


def _faulted(config: LineConfig, *faults: SensorFault) -> LineConfig:
    return with_faults(config, faults)


def _until(stream: Stream, hours: float) -> Stream:
    return [(s, m) for s, m in stream if getattr(m, "sim_time_s", 0.0) < hours * 3600]


@cache
def clean(line: str) -> tuple[LineConfig, Stream, LineExpectation]:
    config = load_config(LINES[line])
    stream = _run(config, SEEDS[line], HOURS)
    return config, stream, fit_expectations(_until(stream, TRAIN_H), warmup_s=1800)


def _watched(expectation: LineExpectation, stream: Stream, **settings: float) -> SensorWatch:
    watch = SensorWatch(expectation, WatchSettings(**settings))  # type: ignore[arg-type]
    watch.feed_all(stream)
    return watch


def _after(alarms: list[SensorAlarm], hours: float, kinds: tuple[str, ...] = ()) -> list[str]:
    return [
        a.describe()
        for a in alarms
        if a.raised_s >= hours * 3600 and (not kinds or a.kind in kinds)
    ]


# -- what is learned --------------------------------------------------------------------
@pytest.mark.parametrize("line", list(LINES))
def test_each_temperature_follows_its_station_thermal_time_constant(line: str) -> None:
    config, _, expectation = clean(line)
    checked = 0
    for station in config.stations:
        sensor = station.sensors.temperature_c
        thermal = station.thermal
        # A time constant shows only where the warm-up is well above the noise (the
        # CNC cell's climate-controlled CMM warms by 0.5 degC: not there).
        if sensor is None or thermal.operating_c - thermal.ambient_c < 10 * sensor.noise_sd:
            continue
        learned = expectation.sensors[(station.id, "temperature_c")].tau_s
        truth = station.thermal.time_constant_s
        # Learned from the stream's states alone, never from the line file.
        assert learned == pytest.approx(truth, rel=0.1), (station.id, learned, truth)
        checked += 1
    assert checked >= 2


@pytest.mark.parametrize("line", list(LINES))
def test_the_spread_left_is_the_sensors_own_noise(line: str) -> None:
    config, _, expectation = clean(line)
    for (station_id, sensor), learned in expectation.sensors.items():
        spec = getattr({s.id: s for s in config.stations}[station_id].sensors, sensor)
        if sensor not in ("temperature_c", "vibration_mm_s") or spec.noise_sd == 0:
            continue
        running = learned.sigma_by_state.get("running", learned.sigma)
        # What is left once the state, setpoints and wear are known: the noise, no more.
        assert running == pytest.approx(spec.noise_sd, rel=0.25), (station_id, sensor)


def test_an_expectation_kept_as_json_judges_as_the_one_fitted() -> None:
    _, stream, expectation = clean("cnc_cell")
    kept = LineExpectation.from_json(json.loads(json.dumps(expectation.to_json())))
    assert kept.layouts == expectation.layouts
    day = _until(stream, 30.0)
    first, second = _watched(expectation, day), _watched(kept, day)
    assert [a.describe() for a in second.alarms()] == [a.describe() for a in first.alarms()]
    for key in expectation.sensors:
        assert second.expected(*key) == first.expected(*key)


def test_wear_within_the_lines_own_renewal_plan_is_held_back_and_past_it_is_not() -> None:
    # The SMT printer's stencil is wiped whenever its wear reaches preventive_at:
    # the line's own plan, well past the wear alarm's level.
    config = load_config(ROOT / "examples/lines/smt.yaml")
    index, printer = next((i, s) for i, s in enumerate(config.stations) if s.id == "printer")
    wear = printer.process.wear
    assert wear is not None
    assert wear.preventive_at is not None
    per_part = wear_per_part(wear, printer.process.speed.default)
    # The wear the last print before each wipe reports (wear as it was when printed).
    renewed_at = (math.ceil(wear.preventive_at / per_part - 1e-9) - 1) * per_part
    assert renewed_at > WatchSettings().wear_level
    stream = _run(config, 33, 30.0)
    expectation = fit_expectations(_until(stream, TRAIN_H), warmup_s=1800)
    assert expectation.renewals == {"printer": pytest.approx(renewed_at)}
    kept = LineExpectation.from_json(json.loads(json.dumps(expectation.to_json())))
    assert kept.renewals == expectation.renewals

    later = [(s, m) for s, m in stream if getattr(m, "sim_time_s", 0.0) >= TRAIN_H * 3600]
    on_plan = [a for a in _watched(expectation, later).alarms() if a.kind == "wear"]
    assert len(on_plan) >= 5
    assert all(a.on_plan and a.renewed_at == expectation.renewals["printer"] for a in on_plan)
    assert "within the 0.90 at which" in on_plan[0].describe()

    # A line whose wipes stop coming: past the plan, the alarm is the operator's.
    overdue = with_changes(config, {f"stations.{index}.process.wear.preventive_at": 5.0})
    late = _run(overdue, 33, 4.0)
    past = [a for a in _watched(expectation, late).alarms() if a.kind == "wear"]
    assert past
    for alarm in past:
        assert not alarm.on_plan
        assert alarm.seen is not None
        assert alarm.seen > renewed_at
        assert "past the 0.90 at which" in alarm.describe()


# -- faults are found and named -----------------------------------------------------------
def test_faults_are_named_with_their_sensor_kind_and_evidence() -> None:
    config, _, expectation = clean("default")
    faults = [
        # The offset window statistics could not see: 10 degC on a warm station.
        SensorFault(
            station="welding",
            sensor="temperature_c",
            mode="offset",
            start_h=26.2,
            duration_h=1.0,
            magnitude=-10.0,
        ),
        SensorFault(
            station="machining",
            sensor="pressure_bar",
            mode="offset",
            start_h=29.1,
            duration_h=1.0,
            magnitude=0.4,
        ),
        SensorFault(
            station="cutting",
            sensor="vibration_mm_s",
            mode="spike",
            start_h=31.3,
            duration_h=0.8,
            magnitude=2.0,
        ),
        SensorFault(
            station="inspection",
            sensor="temperature_c",
            mode="stuck",
            start_h=33.4,
            duration_h=1.0,
        ),
        SensorFault(
            station="machining",
            sensor="spindle_rpm",
            mode="dropout",
            start_h=36.5,
            duration_h=0.7,
        ),
    ]
    stream = _run(_faulted(config, *faults), SEEDS["default"], 40.0)
    watch = _watched(expectation, stream)
    raised = watch.alarms()
    for fault in faults:
        start, end = fault.start_h * 3600, (fault.start_h + fault.duration_h) * 3600
        mine = [
            a
            for a in raised
            if a.station == fault.station
            and a.sensor == fault.sensor
            and start <= a.raised_s
            and a.raised_s <= end + 120
        ]
        assert mine, (fault, [a.describe() for a in raised if a.raised_s >= 24 * 3600])
        first = mine[0]
        assert first.kind == fault.mode, first.describe()
        assert first.raised_s - start <= 600, first.describe()
        if fault.mode == "offset":
            # The evidence: the reading seen against the one expected, the offset apart.
            assert first.seen is not None
            assert first.expected is not None
            assert first.seen - first.expected == pytest.approx(fault.magnitude, rel=0.5)
            assert first.sd_apart is not None
            assert abs(first.sd_apart) >= 3
        if fault.mode == "spike":
            # The evidence is the spike's own reading (the fault adds the magnitude
            # to it), not the reading after it, by which the spike was judged.
            assert first.seen is not None
            assert first.expected is not None
            assert first.sd_apart is not None
            assert abs(first.seen - first.expected) == pytest.approx(fault.magnitude, rel=0.5)
            assert abs(first.sd_apart) >= watch.settings.spike_sd
    # Nothing else after the history it learned from.
    others = [
        a.describe()
        for a in raised
        if a.raised_s >= TRAIN_H * 3600
        and a.kind != "wear"
        and not any(
            a.station == f.station
            and a.sensor == f.sensor
            and f.start_h * 3600 <= a.raised_s <= (f.start_h + f.duration_h) * 3600 + 300
            for f in faults
        )
    ]
    assert others == []


def test_a_stuck_reading_clears_once_it_moves_again() -> None:
    config, _, expectation = clean("cnc_cell")
    fault = SensorFault(
        station="milling", sensor="temperature_c", mode="stuck", start_h=27.0, duration_h=0.5
    )
    watch = _watched(expectation, _run(_faulted(config, fault), SEEDS["cnc_cell"], 29.0))
    stuck = [a for a in watch.alarms() if a.sensor == "temperature_c" and a.station == "milling"]
    assert [a.kind for a in stuck] == ["stuck"], [a.describe() for a in stuck]
    assert stuck[0].cleared_s is not None
    assert 27.5 * 3600 <= stuck[0].cleared_s <= 27.5 * 3600 + 600


# -- what a line does raises nothing ---------------------------------------------------------
@pytest.mark.parametrize("line", list(LINES))
def test_a_day_of_shifts_nights_breaks_and_changeovers_raises_no_sensor_alarm(line: str) -> None:
    _, stream, expectation = clean(line)
    day = list(stream)
    seen = {m.to_state for _, m in day if isinstance(m, StateChanged)}
    # The day holds what a line does: a night's stop and the shift start after it,
    # breaks, breakdowns and (the CNC cell) changeovers.
    assert {"planned_downtime", "running"} <= seen
    if line == "cnc_cell":
        assert "setup" in seen
    watch = _watched(expectation, day)
    assert _after(watch.alarms(), TRAIN_H, kinds=("offset", "spike", "stuck", "dropout")) == []
    # And most of it was judged, not skipped.
    readings = sum(
        sum(value is not None for value in (m.temperature_c, m.vibration_mm_s, m.spindle_rpm))
        + (m.power_kw is not None)
        + (m.pressure_bar is not None)
        for _, m in day
        if isinstance(m, Telemetry)
    )
    assert watch.skipped < 0.2 * readings


def test_a_setpoint_change_the_line_acknowledged_raises_no_alarm() -> None:
    config = load_config(LINES["default"])
    seed = 33

    # Clean history that saw the machining speed at two values.
    def faster(line: LoopbackLine) -> None:
        line.plant.set_setpoint("machining", "speed", 1.15)

    def back(line: LoopbackLine) -> None:
        line.plant.set_setpoint("machining", "speed", 1.0)

    history = _run(config, seed, 24.0, at={8.0: faster, 12.0: back})
    expectation = fit_expectations(history, warmup_s=1800)
    assert expectation.layouts["machining"].ranges == ((1.0, 1.15),)

    changes: list[tuple[float, float]] = []

    def change(value: float) -> Callable[[LoopbackLine], None]:
        def apply(line: LoopbackLine) -> None:
            line.plant.set_setpoint("machining", "speed", value)
            changes.append((line.plant.env.now, value))

        return apply

    stream = _run(config, seed + 1, 36.0, at={27.3: change(1.15), 31.8: change(1.0)})
    watch = SensorWatch(expectation)
    pending = list(changes)
    raised: list[SensorAlarm] = []
    for station, message in stream:
        now = getattr(message, "sim_time_s", 0.0)
        while pending and pending[0][0] <= now:
            at, value = pending.pop(0)
            # The acknowledged command: in force from its time.
            watch.notice_setpoint("machining", "speed", value, at)
        raised += watch.feed(station, message)
    assert [a.describe() for a in raised if a.kind != "wear" and a.cleared_s is None] == []
    # The speed changed what the sensors read, and the watch judged them meanwhile.
    speeds = [
        m.spindle_rpm
        for s, m in stream
        if s == "machining"
        and isinstance(m, Telemetry)
        and m.spindle_rpm
        and 28 * 3600 <= m.sim_time_s < 31 * 3600
    ]
    assert speeds
    assert max(speeds) > 1.1 * {s.id: s for s in config.stations}["machining"].sensors.nominal_rpm


def test_a_setpoint_beyond_what_history_showed_is_not_judged() -> None:
    config, _, expectation = clean("default")

    def fastest(line: LoopbackLine) -> None:
        line.plant.set_setpoint("machining", "speed", 1.3)

    stream = _run(config, SEEDS["default"], 28.0, at={25.0: fastest})
    watch = SensorWatch(expectation)
    for station, message in stream:
        if getattr(message, "sim_time_s", 0.0) >= 25.0 * 3600 and station == "machining":
            # The acknowledged command.
            watch.notice_setpoint("machining", "speed", 1.3, 25.0 * 3600)
        watch.feed(station, message)
    assert _after(watch.alarms(), TRAIN_H, kinds=("offset", "spike", "stuck")) == []
    assert watch.skipped > 0


def test_telemetry_lost_in_a_broker_outage_is_not_a_dropout() -> None:
    _, stream, expectation = clean("default")
    # QoS 0 telemetry is lost for 25 minutes; the events (QoS 1) arrive after it.
    start, end = 30.0 * 3600, 30.0 * 3600 + 1500
    outage = [
        (s, m) for s, m in stream if not (isinstance(m, Telemetry) and start <= m.sim_time_s < end)
    ]
    watch = _watched(expectation, _until(outage, 34.0))
    assert _after(watch.alarms(), TRAIN_H, kinds=("offset", "spike", "stuck", "dropout")) == []


def test_a_restarted_twin_watches_from_where_it_joins() -> None:
    _, stream, expectation = clean("cnc_cell")
    # A twin started at hour 30 sees the stream from there: no history of the states.
    joined = [(s, m) for s, m in stream if getattr(m, "sim_time_s", 0.0) >= 30 * 3600]
    watch = _watched(expectation, joined)
    assert _after(watch.alarms(), 0.0, kinds=("offset", "spike", "stuck", "dropout")) == []


def test_a_sensor_silent_while_the_line_sends_is_a_dropout_and_clears_when_it_returns() -> None:
    config, _, expectation = clean("cnc_cell")
    fault = SensorFault(
        station="saw", sensor="vibration_mm_s", mode="dropout", start_h=26.0, duration_h=0.25
    )
    watch = _watched(expectation, _run(_faulted(config, fault), SEEDS["cnc_cell"], 27.0))
    dropouts = [a for a in watch.alarms() if a.kind == "dropout"]
    assert [(a.station, a.sensor) for a in dropouts] == [("saw", "vibration_mm_s")]
    period = expectation.sensors[("saw", "vibration_mm_s")].period_s
    assert dropouts[0].raised_s - 26.0 * 3600 <= 4 * period + 1
    assert dropouts[0].cleared_s is not None
    assert 26.25 * 3600 <= dropouts[0].cleared_s <= 26.25 * 3600 + 2 * period


# -- scoring --------------------------------------------------------------------------------
def test_scoring_credits_the_right_sensor_only_and_wear_only_to_wear() -> None:
    truth = [
        SensorEpisode("a", "temperature_c", "offset", 100.0, 200.0),
        SensorEpisode("a", "wear", "wear", 300.0, 400.0),
    ]
    right = Raised("a", "temperature_c", 110.0, 130.0, 150.0, "offset")
    wrong_sensor = Raised("a", "vibration_mm_s", 110.0, 120.0, 150.0, "offset")
    wear = Raised("a", "wear", 310.0, 320.0, None, "wear")
    wear_on_fault = Raised("a", "wear", 150.0, 150.0, 160.0, "wear")
    scored = score_alarms(
        [right, wrong_sensor, wear, wear_on_fault], truth, start_s=0.0, end_s=86_400.0
    )
    assert scored.found == 2
    assert scored.delays_s == [30.0]
    assert scored.wear_delays_s == [20.0]
    assert {(a.sensor, a.raised_s) for a in scored.false} == {
        ("vibration_mm_s", 120.0),
        ("wear", 150.0),
    }
    # Credited at the station, the wrong sensor still finds the fault.
    by_station = score_alarms(
        [wrong_sensor], truth[:1], start_s=0.0, end_s=86_400.0, by_station=True
    )
    assert by_station.found == 1
    assert by_station.false_alarms == 0
    # An alarm raised after the fault (and its grace) ended finds nothing.
    late = Raised("a", "temperature_c", 150.0, 400.0, 500.0, "offset")
    assert score_alarms([late], truth[:1], start_s=0.0, end_s=86_400.0).found == 0


def test_the_false_alarm_bound_is_the_exact_poisson_interval() -> None:
    # No alarm in 7.38 days: the upper 95% bound is 3.689/7.38 = 0.5 a day.
    assert poisson_upper(0, 3.6889 / 0.5) == pytest.approx(0.5, rel=1e-3)
    assert poisson_upper(2, 10.0) > poisson_upper(1, 10.0) > poisson_upper(0, 10.0)
    assert math.isfinite(poisson_upper(5, 1.0))


def test_the_defaults_are_the_settings_chosen_on_the_tuning_seeds() -> None:
    # bench/alarms.py chooses them on seeds its figures never use; the watch ships them.
    chosen = json.loads((ROOT / "bench/results/alarms.json").read_text("utf-8"))["settings"]
    defaults = WatchSettings()
    assert chosen
    assert {name: getattr(defaults, name) for name in chosen} == chosen


@pytest.mark.parametrize(
    ("field", "value"),
    [("cusum_h", 0.0), ("spike_sd", -1.0), ("stuck_chance", 1.0), ("spikes", 0)],
)
def test_settings_out_of_range_are_refused_by_name(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        WatchSettings(**{field: value})  # type: ignore[arg-type]


def test_a_response_anchored_on_a_frozen_reading_starts_over_when_the_sensor_moves() -> None:
    """After a gap in the stream the slow responses are anchored anew on the next
    readings; a sensor stuck then gives an anchor that is no reading of the process.
    Once it moves again the response starts over from a true reading, so the stuck
    alarm clears soon after the fault ends and leaves no offset behind it."""
    config, _, expectation = clean("default")
    # Welding's temperature freezes at 21:30 while it runs warm; the line stops for
    # the night at 22:00 (hour 40) and cools while the reading stays. The broker
    # loses the telemetry from hour 40.5 to 40.9 (QoS 0), and the sensor moves again
    # at hour 41.
    fault = SensorFault(
        station="welding", sensor="temperature_c", mode="stuck", start_h=39.5, duration_h=1.5
    )
    stream = _run(_faulted(config, fault), SEEDS["default"], 43.0)
    lost = (40.5 * 3600, 40.9 * 3600)
    kept = [
        (s, m)
        for s, m in stream
        if not (isinstance(m, Telemetry) and lost[0] <= m.sim_time_s < lost[1])
    ]
    watch = _watched(expectation, kept)
    raised = [
        a
        for a in watch.alarms()
        if (a.station, a.sensor) == ("welding", "temperature_c") and a.raised_s >= TRAIN_H * 3600
    ]
    assert [a.kind for a in raised] == ["stuck"], [a.describe() for a in raised]
    assert raised[0].started_s <= 39.5 * 3600 + 60
    cleared = raised[0].cleared_s
    assert cleared is not None
    assert cleared <= 41.0 * 3600 + 600
