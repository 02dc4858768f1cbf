"""The sensor watch on a live stream: it learns the hours it is told, fits beside the
stream, keeps what it learnt, watches at once after a restart, and sets aside a
file it cannot use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel

from models.anomaly.live_watch import LiveSensorWatch
from sensors.loopback import run_through_ingest
from twin.config.line import LineConfig, SensorFault, load_config, with_faults

SEED = 41
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


def test_it_learns_then_watches_and_watches_at_once_after_a_restart(tmp_path: Path) -> None:
    config = load_config()
    path = tmp_path / "sensor-watch.json"
    stream = _stream(_offset(config), 7.2)
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
