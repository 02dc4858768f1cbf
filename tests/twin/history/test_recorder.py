"""The recorder: contract messages and KPI snapshots as points of the schema."""

from __future__ import annotations

from collections.abc import Sequence

from twin.config.line import load_config
from twin.contract import SCHEMA_VERSION, STATE_RANK, PartFinished, StateChanged, Telemetry
from twin.history.points import SCHEMA, Point
from twin.history.recorder import HistoryRecorder
from twin.state.line import TwinState


class Collect:
    def __init__(self) -> None:
        self.points: list[Point] = []

    def write(self, points: Sequence[Point]) -> None:
        self.points.extend(points)


HEADER = {"schema_version": SCHEMA_VERSION, "source": "plant-x", "sim_time_s": 10.0}


def test_messages_become_points_of_the_schema() -> None:
    sink = Collect()
    recorder = HistoryRecorder(sink, "s", "a", "l")
    recorder.record(
        "weld", Telemetry(**HEADER, ts_ms=1000, seq=0, temperature_c=80.5, power_kw=3.0)
    )
    recorder.record(
        "weld",
        PartFinished(
            **HEADER,
            ts_ms=1001,
            seq=1,
            event="part_finished",
            part_id=4,
            result="scrap",
            processing_time_s=42.0,
            exits_line=False,
            output_buffer_level=2,
            process={"speed": 1.1, "wear": 0.3},
        ),
    )
    recorder.record(
        "weld",
        StateChanged(
            **HEADER,
            ts_ms=1002,
            seq=2,
            event="state_changed",
            machine=1,
            from_state="running",
            to_state="down",
            reason="breakdown",
            category="unplanned",
            packml="Aborted",
        ),
    )
    telemetry, part, state = sink.points
    assert telemetry.fields == {"temperature_c": 80.5, "power_kw": 3.0}
    assert telemetry.tags == {
        "site": "s",
        "area": "a",
        "line": "l",
        "origin": "live",
        "station": "weld",
    }
    assert part.fields == {
        "good": 0.0,
        "scrap": 1.0,
        "rework": 0.0,
        "processing_time_s": 42.0,
        "part_id": 4.0,
        "sim_time_s": HEADER["sim_time_s"],
        "process_speed": 1.1,
        "process_wear": 0.3,
    }
    assert state.fields == {"code": float(STATE_RANK["down"]), "sim_time_s": HEADER["sim_time_s"]}
    assert state.tags["machine"] == "1"
    for point in sink.points:
        known = SCHEMA[point.measurement]
        assert all(name in known or name.startswith("process_") for name in point.fields)


def test_two_samples_in_one_millisecond_stay_apart() -> None:
    sink = Collect()
    recorder = HistoryRecorder(sink, "s", "a", "l")
    for seq in range(3):
        recorder.record("cut", Telemetry(**HEADER, ts_ms=5000, seq=seq, power_kw=float(seq)))
    recorder.record("weld", Telemetry(**HEADER, ts_ms=5000, seq=0, power_kw=9.0))
    assert [point.time_ms for point in sink.points] == [5000, 5001, 5002, 5000]
    assert [point.fields["power_kw"] for point in sink.points] == [0.0, 1.0, 2.0, 9.0]
    assert recorder.shifted == 2


def test_kpi_snapshot_leaves_out_what_has_no_value_yet() -> None:
    config = load_config()
    sink = Collect()
    recorder = HistoryRecorder(sink, "s", "a", "l")
    twin = TwinState("s", "a", "l")
    points = recorder.kpi_points(twin.view(), config, 7)
    line = points[0]
    assert "station" not in line.tags
    assert "oee" not in line.fields  # no parts yet: no OEE, not an OEE of 0
    assert set(line.fields) <= set(SCHEMA["kpi"])


def test_telemetry_is_recorded_as_the_point_it_becomes() -> None:
    """record takes telemetry by a path of its own: each sample lands as the point
    point_of makes of it (the general path), for every subset of sensors, station
    and origin."""
    fields = ("temperature_c", "vibration_mm_s", "spindle_rpm", "power_kw", "pressure_bar")
    values = {"temperature_c": 61.5, "vibration_mm_s": 2.25, "spindle_rpm": 1500.0}
    values |= {"power_kw": 4.5, "pressure_bar": 6.0}
    for origin in ("live", "backfill"):
        sink = Collect()
        recorder = HistoryRecorder(
            sink, "s", "a", "l", origin=origin, time_of=lambda message: 7 * message.seq
        )
        expected = []
        for seq in range(1, 32):  # every non-empty subset of the five sensors
            present = {name: values[name] for bit, name in enumerate(fields) if seq >> bit & 1}
            station = ("weld", "paint", "pack")[seq % 3]
            sample = Telemetry(**HEADER, ts_ms=1000 + seq, seq=seq, **present)
            recorder.record(station, sample)
            expected.append(recorder.point_of(station, sample))
        assert sink.points == expected
        assert {point.tags["origin"] for point in sink.points} == {origin}
        assert recorder.shifted == 0
