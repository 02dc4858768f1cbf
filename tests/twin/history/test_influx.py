"""The InfluxDB sink against a real server: every point arrives, once, even across an outage.

VictoriaMetrics (Debian's ``victoria-metrics``) stands in for InfluxDB 2: it
takes ``/api/v2/write`` and exports what it stored, so each test compares the
points written through the ``HistoryWriter`` with what the server holds,
series by series and millisecond by millisecond. Expected sets are computed
from the points written, never typed in.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from helpers import VictoriaMetrics, get_free_port, wait_until

from twin.alarms.lifecycle import AlarmBook, AlarmKey
from twin.alarms.points import STATE_CODES, alarm_points
from twin.history.influx import InfluxSink, influx_sink
from twin.history.influx_options import (
    DEFAULT_BUCKET,
    InfluxConfigError,
    InfluxOptions,
    record_lines_for,
)
from twin.history.points import SCHEMA, HistoryWriter, Point, StoredSample
from twin.history.store import SqliteStore

PLACE = {"site": "plant-1", "area": "assembly", "line": "line-a"}
STATIONS = ("cut", "weld", "paint")

# Short waits, so an outage shows up as retries and failed batches within seconds.
FAST = InfluxOptions(
    batch_size=200,
    flush_interval_ms=200,
    retry_interval_ms=100,
    max_retries=3,
    max_retry_delay_ms=400,
    max_retry_time_ms=3_000,
    timeout_ms=2_000,
    max_in_flight=800,
    replay_backoff_s=0.2,
    replay_backoff_max_s=1.0,
    poll_interval_s=0.2,
)

SampleKey = tuple[str, frozenset[tuple[str, str]], int]


def make_points(rng: random.Random, start_ms: int, count: int) -> list[Point]:
    """Points of every measurement, one millisecond apart (so no two share a series and time)."""
    points = []
    for index in range(count):
        time_ms = start_ms + index
        station = rng.choice(STATIONS)
        kind = index % 4
        if kind == 0:
            names = rng.sample(SCHEMA["telemetry"], rng.randint(1, 3))
            tags = {**PLACE, "station": station, "machine": f"{station}-1", "origin": "live"}
            points.append(Point("telemetry", tags, _values(rng, names), time_ms))
        elif kind == 1:
            result = rng.choice(("good", "scrap"))
            fields = {result: 1.0, "processing_time_s": round(rng.uniform(5, 60), 3)}
            tags = {**PLACE, "station": station, "origin": "live"}
            points.append(Point("part", tags, fields, time_ms))
        elif kind == 2:
            # Line KPIs carry no station tag.
            names = ["oee", "availability", "throughput_per_h"]
            points.append(Point("kpi", {**PLACE, "origin": "live"}, _values(rng, names), time_ms))
        else:
            # A tag value with a space: escaped in line protocol, plain in the server.
            category = rng.choice(("minor stop", "breakdown"))
            tags = {**PLACE, "station": station, "category": category, "origin": "backfill"}
            points.append(Point("loss", tags, _values(rng, ["time_s", "cost"]), time_ms))
    return points


def _values(rng: random.Random, names: Iterable[str]) -> dict[str, float]:
    return {name: round(rng.uniform(0, 500), 3) for name in names}


def expected_samples(points: Iterable[Point]) -> dict[SampleKey, float]:
    """What the server should hold: ``<measurement>_<field>`` with the tags as labels."""
    return {
        (f"{point.measurement}_{name}", frozenset(point.tags.items()), point.time_ms): value
        for point in points
        for name, value in point.fields.items()
    }


def sample_count(points: Sequence[Point]) -> int:
    return sum(len(point.fields) for point in points)


def server_holds(server: VictoriaMetrics, expected: dict[SampleKey, float]) -> bool:
    server.force_flush()
    return set(server.samples()) == set(expected)


def assert_server_holds_exactly(
    server: VictoriaMetrics,
    expected: dict[SampleKey, float],
    may_repeat: Iterable[SampleKey] = (),
) -> None:
    """The server holds every expected sample, nothing else, each once (the helper's
    VictoriaMetrics keeps duplicates) except those in ``may_repeat``: samples sent
    but never acknowledged, which a sink must send again (InfluxDB replaces them)."""
    # Points become visible to exports a moment after the write.
    wait_until(lambda: server_holds(server, expected), timeout=60, interval=0.5)
    found = server.samples()
    missing = set(expected) - set(found)
    extra = set(found) - set(expected)
    assert not missing, f"{len(missing)} samples never arrived, e.g. {sorted(missing)[:3]}"
    assert not extra, f"{len(extra)} samples nobody wrote, e.g. {sorted(extra)[:3]}"
    repeatable = set(may_repeat)
    twice = {
        key: values
        for key, values in found.items()
        if len(values) != 1 and not (key in repeatable and len(set(values)) == 1)
    }
    assert not twice, f"{len(twice)} samples stored more than once, e.g. {list(twice.items())[:3]}"
    wrong = {
        key: (found[key][0], value)
        for key, value in expected.items()
        if not math.isclose(found[key][0], value, rel_tol=1e-9, abs_tol=1e-9)
    }
    assert not wrong, (
        f"{len(wrong)} values differ (stored, written), e.g. {list(wrong.items())[:3]}"
    )


def reopened_marks(path: Path, name: str = "influxdb") -> tuple[int, int, int]:
    """(mark, last position, lost) of a closed store, opened again."""
    store = SqliteStore(path, retention_ms=None)
    try:
        return store.mark(name), store.last_position(), store.lost(name)
    finally:
        store.close()


# -- records and rows ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("batch_size", "max_in_flight", "record_lines"),
    [(5_000, 20_000, 10), (200, 800, 10), (7, 100, 7), (13, 100, 1), (1_234, 9_999, 2), (60, 4, 4)],
)
def test_records_divide_a_batch_and_fit_in_flight(
    batch_size: int, max_in_flight: int, record_lines: int
) -> None:
    options = InfluxOptions(batch_size=batch_size, max_in_flight=max_in_flight)
    assert record_lines_for(options) == record_lines


def test_rows_read_are_the_samples_read(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "history.sqlite3", retention_ms=None)
    try:
        store.write(make_points(random.Random(6), 1_700_000_000_000, 300))
        assert store.flush(10)
        for position, limit in ((0, 1), (0, 1_000), (17, 50), (store.last_position(), 5)):
            rows, series = store.read_rows_after(position, limit)
            assert [
                StoredSample(position, key.measurement, key.field, key.tags, time_ms, value)
                for position, series_id, time_ms, value in rows
                for key in [series[series_id]]
            ] == store.read_after(position, limit)
            assert set(series) == {series_id for _, series_id, _, _ in rows}
    finally:
        store.close()


# -- configuration -----------------------------------------------------------------------------
def test_settings_win_over_influxdb_clients_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SqliteStore(tmp_path / "history.sqlite3", retention_ms=None)
    monkeypatch.delenv("INFLUXDB_V2_URL", raising=False)
    try:
        assert influx_sink(store) is None

        monkeypatch.setenv("INFLUXDB_V2_URL", "http://127.0.0.1:9")
        monkeypatch.setenv("INFLUXDB_V2_ORG", "env-org")
        monkeypatch.setenv("INFLUXDB_V2_TOKEN", "env-token")
        from_env = influx_sink(store)
        assert from_env is not None
        assert (from_env.client.url, from_env.org, from_env.client.token) == (
            "http://127.0.0.1:9",
            "env-org",
            "env-token",
        )
        assert from_env.bucket == DEFAULT_BUCKET
        from_env.close(1)

        from_settings = influx_sink(
            store, url="http://127.0.0.1:10", org="org", bucket="twin", token="settings-token"
        )
        assert from_settings is not None
        assert (
            from_settings.client.url,
            from_settings.org,
            from_settings.bucket,
            from_settings.client.token,
        ) == ("http://127.0.0.1:10", "org", "twin", "settings-token")
        from_settings.close(1)

        with pytest.raises(InfluxConfigError) as refused:
            InfluxSink.from_config("ftp://user:hunter2@host", "o", "b", "t", store=store)
        assert "hunter2" not in str(refused.value)
    finally:
        store.close()


# -- a real server -----------------------------------------------------------------------------
@pytest.mark.integration
@pytest.mark.slow
def test_every_point_arrives_with_its_tags_fields_and_time(
    tmp_path: Path, victoria_metrics: VictoriaMetrics
) -> None:
    path = tmp_path / "history.sqlite3"
    store = SqliteStore(path, retention_ms=None)
    sink = InfluxSink.from_config(
        victoria_metrics.url, "factory", "twin", "token", store=store, options=FAST
    )
    writer = HistoryWriter(store, [sink])
    rng = random.Random(11)
    start_ms = int(time.time() * 1000) - 600_000
    points = make_points(rng, start_ms, 2_000)
    offset = 0
    while offset < len(points):
        size = rng.randint(1, 150)
        writer.write(points[offset : offset + size])
        offset += size
    writer.close()  # flushes the store, then the sink's batches

    mark, last, lost = reopened_marks(path)
    assert (mark, lost) == (last, 0)
    assert_server_holds_exactly(victoria_metrics, expected_samples(points))


@pytest.mark.integration
def test_alarm_changes_reach_the_server_as_points_of_the_alarm_measurement(
    tmp_path: Path, victoria_metrics: VictoriaMetrics
) -> None:
    store = SqliteStore(tmp_path / "history.sqlite3", retention_ms=None)
    sink = InfluxSink.from_config(
        victoria_metrics.url, "factory", "twin", "token", store=store, options=FAST
    )
    writer = HistoryWriter(store, [sink])
    book = AlarmBook()
    wall_ms = int(time.time() * 1000) - 60_000
    key = AlarmKey("sensor", "weld", "temperature_c")
    changes = [
        *book.condition(key, True, 100.0, priority="high", message="offset", wall_ms=wall_ms),
        *book.acknowledge(key.id, 130.0, by="anna", wall_ms=wall_ms + 5),
        # Cleared in the same millisecond as acknowledged: a point of its own.
        *book.condition(key, False, 130.0, wall_ms=wall_ms + 5),
        *book.condition(AlarmKey("ingest", None, "gaps"), True, 140.0, wall_ms=wall_ms + 9),
    ]
    points = alarm_points(changes, PLACE)
    writer.write(points)
    writer.close()
    assert len({(p.tags["alarm"], p.time_ms) for p in points}) == len(changes)
    assert [p.fields["state_code"] for p in points[:3]] == [
        STATE_CODES[state] for state in ("unacknowledged", "acknowledged", "normal")
    ]
    assert "station" not in points[3].tags  # the line's own alarm names no station
    assert_server_holds_exactly(victoria_metrics, expected_samples(points))


class _RequestCountingSink(InfluxSink):
    """Notes the lines of every request InfluxDB acknowledged."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.request_lines: list[int] = []
        super().__init__(*args, **kwargs)

    def _on_success(self, generation: int, data: str | bytes) -> None:
        body = data.encode() if isinstance(data, str) else data
        self.request_lines.append(body.count(b"\n") + 1)
        super()._on_success(generation, data)


@pytest.mark.integration
@pytest.mark.slow
def test_a_backlog_goes_out_in_full_requests_of_whole_records(
    tmp_path: Path, victoria_metrics: VictoriaMetrics
) -> None:
    path = tmp_path / "history.sqlite3"
    store = SqliteStore(path, retention_ms=None)
    points = make_points(random.Random(12), int(time.time() * 1000) - 600_000, 1_500)
    store.write(points)
    assert store.flush(10)
    last = store.last_position()
    assert last % FAST.batch_size  # the last request is a partial one
    sink = _RequestCountingSink.from_config(
        victoria_metrics.url, "factory", "twin", "token", store=store, options=FAST
    )
    assert isinstance(sink, _RequestCountingSink)
    assert wait_until(lambda: store.mark(sink.name) == last, timeout=60)
    up = sink.health()
    sink.close()
    store.close()

    assert (up["written"], up["failed"], up["in_flight"], up["pending"]) == (last, 0, 0, 0)
    assert sum(sink.request_lines) == last
    assert max(sink.request_lines) == FAST.batch_size
    assert sink.request_lines.count(FAST.batch_size) >= len(sink.request_lines) // 2
    assert_server_holds_exactly(victoria_metrics, expected_samples(points))


@pytest.mark.integration
@pytest.mark.slow
def test_an_outage_mid_stream_loses_nothing_and_sends_nothing_acknowledged_again(
    tmp_path: Path, victoria_metrics: VictoriaMetrics
) -> None:
    """After an outage the sink replays from its mark: every sample arrives, and
    none the server had acknowledged before the outage is stored a second time
    (the server keeps duplicates, so a sink that re-sent everything fails)."""
    path = tmp_path / "history.sqlite3"
    store = SqliteStore(path, retention_ms=None)
    options = replace(FAST, batch_size=100_000, max_in_flight=200_000, flush_interval_ms=12_000)
    sink = InfluxSink.from_config(
        victoria_metrics.url, "factory", "twin", None, store=store, options=options
    )
    writer = HistoryWriter(store, [sink])
    written: list[Point] = []
    stop = threading.Event()
    rng = random.Random(5)
    start_ms = int(time.time() * 1000) - 600_000

    def produce() -> None:
        while not stop.is_set():
            points = make_points(rng, start_ms + len(written), 4)
            writer.write(points)
            written.extend(points)
            # A steady stream rather than a burst: pacing, not synchronisation.
            time.sleep(0.01)

    producer = threading.Thread(target=produce, name="producer")
    producer.start()
    try:
        # Batches go out every 12 s. After one is acknowledged, the server goes down
        # mid-stream, with samples in the sink's open batch, unacknowledged. It is
        # stopped, not killed: VictoriaMetrics 1.79 keeps acknowledged samples in
        # memory for seconds and a kill -9 loses them, a server-side loss no client
        # can see (and no wait for an event could rule out).
        assert wait_until(lambda: sink.health()["written"] > 0, timeout=60)
        acknowledged = sink.health()["mark"]
        assert wait_until(lambda: sink.health()["in_flight"] >= 1_000, timeout=60)
        victoria_metrics.stop()

        assert wait_until(lambda: sink.health()["failed"] > 0, timeout=60)
        # The stream goes on into the store while the server is down.
        written_at_failure = len(written)
        assert wait_until(lambda: len(written) > written_at_failure + 100, timeout=60)
        down = sink.health()
        assert down["retries"] > 0
        assert down["connected"] is False
        assert down["last_error"]
        assert (down["pending"] or 0) > 0

        victoria_metrics.start()  # same port, same data
        # The replay is acknowledged while the stream still runs.
        assert wait_until(lambda: sink.health()["mark"] > down["mark"], timeout=120)
    finally:
        stop.set()
        producer.join()
    writer.close(timeout=60)
    # Store positions follow the write order: the first ``acknowledged`` samples
    # were acknowledged before the outage and must be stored once; the rest were
    # sent around the outage, and a replay may repeat them.
    counted = 0
    for index, point in enumerate(written):
        counted += len(point.fields)
        if counted > acknowledged:
            unacknowledged = written[index:]
            break
    assert acknowledged > 0
    assert_server_holds_exactly(
        victoria_metrics, expected_samples(written), may_repeat=expected_samples(unacknowledged)
    )
    after = sink.health()  # counters still answer; the store is closed
    assert after["replays"] >= 1
    assert after["written"] == sample_count(written)
    mark, last, lost = reopened_marks(path)
    assert (mark, lost) == (last, 0)
    assert last == sample_count(written)


@pytest.mark.integration
@pytest.mark.slow
def test_health_counts_and_the_token_never_logged(
    tmp_path: Path, victoria_metrics: VictoriaMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = f"tok-{uuid.uuid4().hex}"
    store = SqliteStore(tmp_path / "history.sqlite3", retention_ms=3_600_000)
    nobody = f"http://127.0.0.1:{get_free_port()}"
    sink = InfluxSink.from_config(nobody, "factory", "twin", token, store=store, options=FAST)
    writer = HistoryWriter(store, [sink])
    now_ms = int(time.time() * 1000)
    rng = random.Random(8)
    fresh = make_points(rng, now_ms - 60_000, 300)
    stale = make_points(rng, now_ms - 2 * 3_600_000, 100)  # older than the retention
    writer.write(fresh)
    writer.write(stale)
    assert writer.flush(10)
    # Retention (the store also runs it itself, at start and every minute) takes
    # the stale samples before the sink had them: counted as lost, never silent.
    store.apply_retention(int(time.time() * 1000))

    # Nobody listens: retries, failed batches, nothing acknowledged.
    assert wait_until(
        lambda: sink.health()["retries"] >= 6 and sink.health()["failed"] > 0, timeout=60
    )
    down = sink.health()
    assert (down["written"], down["mark"], down["pending"], down["lost"]) == (
        0,
        0,
        sample_count(fresh),
        sample_count(stale),
    )
    assert down["connected"] is False
    assert down["last_error"]
    assert token not in down["last_error"]

    # With nobody listening, close gives up rather than hang (the bound only catches a hang).
    closing = threading.Thread(target=sink.close, kwargs={"timeout": 1.0}, name="close")
    closing.start()
    closing.join(120)
    assert not closing.is_alive(), "close hangs while nobody listens"
    assert store.mark("influxdb") == 0  # nothing acknowledged, so nothing passed

    # The next sink on the same store delivers the backlog that is left.
    sink = InfluxSink.from_config(
        victoria_metrics.url, "factory", "twin", token, store=store, options=FAST
    )
    last = store.last_position()
    assert wait_until(lambda: sink.health()["mark"] == last, timeout=60)
    up = sink.health()
    assert (up["written"], up["failed"], up["pending"], up["lost"]) == (
        sample_count(fresh),
        0,
        0,
        sample_count(stale),
    )
    assert (up["connected"], up["last_error"], up["dropped"]) == (True, None, 0)
    sink.close()
    store.close()
    assert_server_holds_exactly(victoria_metrics, expected_samples(fresh))

    assert token not in caplog.text
    assert not any(token in record.getMessage() for record in caplog.records)
    # The first problem of a kind is a warning, its many repeats are debug.
    retried = [
        record
        for record in caplog.records
        if record.name == "twin.history.influx" and record.getMessage().endswith("; retrying")
    ]
    warned = [record for record in retried if record.levelno >= logging.WARNING]
    assert 1 <= len(warned) <= 2, [record.getMessage() for record in warned]
    assert len(retried) - len(warned) >= down["retries"] - len(warned) > 0
    chatter = [
        record
        for record in caplog.records
        if record.name.startswith(("influxdb_client", "urllib3"))
        and record.levelno >= logging.WARNING
        and any(
            marker in record.getMessage()
            for marker in ("Retrying", "retriable", "wasn't processed")
        )
    ]
    assert not chatter, [record.getMessage() for record in chatter]
