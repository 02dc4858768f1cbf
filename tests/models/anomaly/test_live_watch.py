"""The sensor watch on a live stream: it learns the hours it is told, fits beside the
stream, keeps what it learnt, watches at once after a restart, and sets aside a
file it cannot use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel

from models.anomaly.live_watch import LiveSensorWatch
from models.anomaly.trace import TracePoint
from sensors.loopback import run_through_ingest
from twin.config.line import LineConfig, SensorFault, load_config, with_faults

SEED = 41
FAULT_START_S = 7.0 * 3600
Stream = list[tuple[str | None, BaseModel]]


def _stream(config: LineConfig, hours: float) -> Stream:
    stream: Stream = []
    run_through_ingest(config, hours, SEED, lambda s, m: stream.append((s, m)))
    return stream


def _offset(config: LineConfig) -> LineConfig:
    fault = SensorFault(
        station="welding",
        sensor="temperature_c",
        mode="offset",
        start_h=7.0,
        duration_h=0.5,
        magnitude=8.0,
    )
    return with_faults(config, [fault])


@pytest.fixture(scope="module")
def offset_stream() -> Stream:
    return _stream(_offset(load_config()), 7.2)


def test_it_learns_then_watches_and_watches_at_once_after_a_restart(
    tmp_path: Path, offset_stream: Stream
) -> None:
    path = tmp_path / "sensor-watch.json"
    stream = offset_stream
    watch = LiveSensorWatch("line1", path, learn_hours=6.0)
    assert watch.status().state == "learning"
    learnt_at = None
    for station, message in stream:
        watch.observe(station, message)
        if learnt_at is None and watch.status().state != "learning":
            learnt_at = getattr(message, "sim_time_s", None)
            assert watch.wait_fitted(timeout=120)
    # It learnt the hours it was told, from the stream's start.
    assert learnt_at is not None
    assert 6.0 * 3600 <= learnt_at < 6.1 * 3600
    status = watch.status()
    assert (status.state, status.learned_hours) == ("watching", 6.0)
    assert status.sensors >= 10
    # The offset that came after it: named, with its evidence.
    [alarm] = [a for a in watch.active() if a.kind != "wear"]
    assert (alarm.station, alarm.sensor, alarm.kind) == ("welding", "temperature_c", "offset")
    assert alarm.seen is not None
    assert alarm.expected is not None
    assert alarm.seen - alarm.expected == pytest.approx(8.0, rel=0.3)

    kept = json.loads(path.read_text("utf-8"))
    assert kept["line"] == "line1"
    restarted = LiveSensorWatch("line1", path, learn_hours=6.0)
    assert restarted.status().state == "watching"
    for station, message in stream:
        restarted.observe(station, message)
    assert [(a.station, a.sensor) for a in restarted.active() if a.kind != "wear"] == [
        ("welding", "temperature_c")
    ]


def test_it_keeps_each_sensors_readings_against_the_band_it_expected(
    offset_stream: Stream,
) -> None:
    watch = LiveSensorWatch("line1", None, learn_hours=6.0)
    for station, message in offset_stream:
        watch.observe(station, message)
        if watch.status().state == "fitting":
            assert watch.wait_fitted(timeout=120)
    assert watch.trace("welding", "no_such_sensor") is None
    trace = watch.trace("welding", "temperature_c")
    assert trace is not None
    # Kept from when it began to judge, in minutes of line time.
    assert 6.0 * 3600 <= trace[0].start_s < 6.1 * 3600
    assert all(b.start_s - a.start_s >= 60.0 for a, b in zip(trace, trace[1:], strict=False))
    assert all(p.lowest <= p.reading <= p.highest for p in trace)

    def band(point: TracePoint) -> tuple[float, float]:
        assert point.expected is not None
        assert point.spread is not None
        return point.expected - 3 * point.spread, point.expected + 3 * point.spread

    judged = [p for p in trace if p.expected is not None]
    clean = [p for p in judged if p.start_s + 60 <= FAULT_START_S]
    faulted = [p for p in judged if p.start_s >= FAULT_START_S and p.start_s + 60 <= 7.2 * 3600]
    assert len(clean) >= 40
    assert len(faulted) >= 5
    # Before the fault the readings stay in the band; in it, above it by the offset.
    inside = [p for p in clean if band(p)[0] <= p.reading <= band(p)[1]]
    assert len(inside) >= 0.95 * len(clean)
    for point in faulted:
        assert point.reading > band(point)[1]
        assert point.expected is not None
        assert point.reading - point.expected == pytest.approx(8.0, rel=0.3)
    # A window: just the bins that overlap it.
    window = watch.trace("welding", "temperature_c", FAULT_START_S, FAULT_START_S + 600)
    assert window is not None
    assert [p.start_s for p in window] == [
        p.start_s for p in trace if FAULT_START_S - 60 < p.start_s <= FAULT_START_S + 600
    ]


def test_a_file_of_another_line_is_set_aside_and_learnt_anew(tmp_path: Path) -> None:
    path = tmp_path / "sensor-watch.json"
    path.write_text(json.dumps({"format": 1, "line": "other", "expectation": {}}), "utf-8")
    watch = LiveSensorWatch("line1", path, learn_hours=1.0)
    assert watch.status().state == "learning"
    assert not path.exists()
    assert path.with_suffix(".unusable.json").exists()
    path.write_text("not json", "utf-8")
    assert LiveSensorWatch("line1", path, learn_hours=1.0).status().state == "learning"


def test_a_watch_that_learns_nothing_says_so() -> None:
    # Six line minutes: each sensor's first half hour only anchors its response.
    watch = LiveSensorWatch("line1", None, learn_hours=0.1)
    for station, message in _stream(load_config(), 0.3):
        watch.observe(station, message)
    assert not watch.wait_fitted(timeout=60)
    status = watch.status()
    assert status.state == "failed"
    assert status.error is not None
    assert "no sensor" in status.error
    assert watch.active() == []


@pytest.mark.parametrize("hours", [0.0, -1.0])
def test_the_hours_to_learn_must_be_positive(hours: float) -> None:
    with pytest.raises(ValueError, match="learn_hours"):
        LiveSensorWatch("line1", None, learn_hours=hours)
