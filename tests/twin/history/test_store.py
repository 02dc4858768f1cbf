"""The embedded history store: correct answers, durable writes, honest refusals."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import textwrap
from collections import defaultdict
from pathlib import Path

import pytest

from twin.history.points import Point, SeriesKey
from twin.history.store import SqliteStore, StoreError

TAGS = {"site": "s", "area": "a", "line": "l"}


def telemetry(station: str, time_ms: int, origin: str = "live", **fields: float) -> Point:
    return Point("telemetry", {**TAGS, "station": station, "origin": origin}, fields, time_ms)


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    # Retention only when a test applies it.
    opened = SqliteStore(tmp_path / "history.sqlite3", retention_ms=None, retention_every_s=None)
    yield opened  # type: ignore[misc]
    opened.close()


def random_points(seed: int, count: int = 3000) -> list[Point]:
    rng = random.Random(seed)
    points = []
    for _ in range(count):
        station = rng.choice(["cut", "weld"])
        points.append(
            telemetry(
                station,
                rng.randrange(0, 3_600_000),
                origin=rng.choice(["live", "backfill"]),
                temperature_c=rng.uniform(10, 90),
                power_kw=rng.uniform(0, 5),
            )
        )
    return points


def test_downsampled_queries_match_the_raw_points(store: SqliteStore) -> None:
    points = random_points(1)
    store.write(points)
    assert store.flush(10)
    start, end, every = 600_000, 3_000_000, 300_000
    for aggregate in ("mean", "min", "max", "last"):
        results = store.query(
            "telemetry",
            "temperature_c",
            start,
            end,
            tags={"station": "weld"},
            every_ms=every,
            aggregate=aggregate,  # type: ignore[arg-type]
        )
        # Origins merge: one series for the station.
        assert len(results) == 1
        assert results[0].key.tags == {**TAGS, "station": "weld"}
        windows: dict[int, list[tuple[int, float]]] = defaultdict(list)
        for point in points:
            if point.tags["station"] == "weld" and start <= point.time_ms < end:
                window = start + (point.time_ms - start) // every * every
                windows[window].append((point.time_ms, point.fields["temperature_c"]))
        got = {window.start_ms: (window.value, window.count) for window in results[0].windows}
        assert set(got) == set(windows)
        for window_start, samples in windows.items():
            values = [value for _, value in samples]
            expected = {
                "mean": statistics.fmean(values),
                "min": min(values),
                "max": max(values),
                "last": max(samples)[1],
            }[aggregate]
            assert got[window_start][0] == pytest.approx(expected)
            assert got[window_start][1] == len(samples)


def test_raw_queries_filter_by_time_tags_and_origin(store: SqliteStore) -> None:
    points = random_points(2, 500)
    store.write(points)
    store.flush(10)
    results = store.query(
        "telemetry", "power_kw", 1_000_000, 2_000_000, tags={"station": "cut", "origin": "live"}
    )
    expected = sorted(
        (point.time_ms, point.fields["power_kw"])
        for point in points
        if point.tags["station"] == "cut"
        and point.tags["origin"] == "live"
        and 1_000_000 <= point.time_ms < 2_000_000
    )
    assert len(results) == 1
    assert results[0].key.tags["origin"] == "live"
    # SQLite REAL is a double: values come back exactly.
    assert sorted((w.start_ms, w.value) for w in results[0].windows) == expected
    assert store.query("telemetry", "power_kw", 0, 10, tags={"station": "nowhere"}) == []


def test_series_are_listed_by_measurement(store: SqliteStore) -> None:
    store.write([telemetry("cut", 1, temperature_c=1.0), Point("kpi", TAGS, {"oee": 0.5}, 2)])
    store.flush(10)
    assert {(key.measurement, key.field) for key in store.series()} == {
        ("telemetry", "temperature_c"),
        ("kpi", "oee"),
    }
    assert [key.field for key in store.series("kpi")] == ["oee"]


def test_the_store_reopens_with_what_it_had(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    first = SqliteStore(path, retention_ms=None)
    first.write(random_points(3, 200))
    first.close()
    again = SqliteStore(path, retention_ms=None)
    try:
        assert again.count() == 400  # two fields a point
        again.write([telemetry("cut", 5, temperature_c=2.0)])
        again.flush(10)
        assert again.count() == 401
    finally:
        again.close()


def test_sinks_tail_the_store_from_their_mark(store: SqliteStore) -> None:
    store.write([telemetry("cut", t, temperature_c=float(t)) for t in range(10)])
    store.flush(10)
    first = store.read_after(store.mark("influx"), 4)
    assert [sample.value for sample in first] == [0.0, 1.0, 2.0, 3.0]
    store.set_mark("influx", first[-1].position)
    rest = store.read_after(store.mark("influx"), 100)
    assert [sample.value for sample in rest] == [float(t) for t in range(4, 10)]
    assert rest[0].tags["station"] == "cut"
    store.set_mark("influx", 1)  # a mark never moves back
    assert store.mark("influx") == first[-1].position


def test_retention_counts_what_a_sink_never_had(store: SqliteStore) -> None:
    store.write([telemetry("cut", t * 1000, temperature_c=float(t)) for t in range(100)])
    store.flush(10)
    delivered = store.read_after(0, 30)
    store.set_mark("influx", delivered[-1].position)
    store.retention_ms = 50_000
    deleted = store.apply_retention(now_ms=100_000)  # keeps t >= 50 s
    assert deleted == 50
    assert store.lost("influx") == 20  # samples 30..49 aged out undelivered
    assert store.count() == 50


def test_a_foreign_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    path.write_text("these are somebody's notes\n")
    with pytest.raises(StoreError, match="not an SQLite database"):
        SqliteStore(path)
    assert path.read_text() == "these are somebody's notes\n"


def test_another_applications_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    with sqlite3.connect(path) as other:
        other.execute("CREATE TABLE invoices (id INTEGER)")
    before = path.read_bytes()
    with pytest.raises(StoreError, match="another application.*invoices"):
        SqliteStore(path)
    assert path.read_bytes() == before


def test_a_damaged_store_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    store = SqliteStore(path, retention_ms=None)
    store.write(random_points(4, 2000))
    store.close()
    data = bytearray(path.read_bytes())
    # Keep the header (it says SQLite, ours), wreck the pages behind it.
    data[4096:] = bytes(len(data) - 4096)
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="damaged|cannot be opened"):
        SqliteStore(path)


WRITER = textwrap.dedent(
    """
    import sys
    from twin.history.points import Point
    from twin.history.store import SqliteStore

    store = SqliteStore(sys.argv[1], retention_ms=None, flush_interval_s=0.01)
    batch = 0
    while True:
        points = [
            Point("telemetry", {"station": "cut"}, {"temperature_c": float(batch * 100 + i)},
                  batch * 100 + i)
            for i in range(100)
        ]
        store.write(points)
        if batch % 5 == 0:
            store.flush()
            print(batch * 100 + 100, flush=True)  # acknowledged: everything so far
        batch += 1
    """
)


@pytest.mark.slow
def test_what_was_acknowledged_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert writer.stdout is not None
    acknowledged = 0
    try:
        while acknowledged < 20_000:
            line = writer.stdout.readline()
            assert line, "the writer died"
            acknowledged = int(line)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
    store = SqliteStore(path, retention_ms=None)
    try:
        results = store.query("telemetry", "temperature_c", 0, acknowledged)
        values = [window.value for window in results[0].windows]
        # Every acknowledged sample is there, once, with its value.
        assert values == [float(t) for t in range(acknowledged)]
        assert store.count() >= acknowledged
    finally:
        store.close()


def test_a_value_that_is_not_a_number_is_counted_not_blocking(store: SqliteStore) -> None:
    store.write([telemetry("cut", 1, temperature_c=float("nan"), power_kw=1.0)])
    store.write([telemetry("cut", 2, temperature_c=3.0)])
    assert store.flush(5)
    assert store.stats.not_finite == 1
    assert store.count() == 2


def test_positions_are_never_reused_after_retention(store: SqliteStore) -> None:
    """A sink's mark must never skip new samples: positions only grow."""
    store.write([telemetry("cut", t, temperature_c=1.0) for t in range(10)])
    store.flush(5)
    newest = store.last_position()
    store.retention_ms = 1
    store.apply_retention(now_ms=1_000_000)  # everything goes
    assert store.count() == 0
    store.write([telemetry("cut", 2_000_000, temperature_c=2.0)])
    store.flush(5)
    assert store.read_after(newest, 10)[0].position > newest
    assert store.count_after(newest) == 1


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_columns_land_whole_and_in_order_within_each_series(store: SqliteStore, seed: int) -> None:
    # The bulk path reorders a batch's rows before inserting them (for the index);
    # what a reader sees must not change: every sample once, and within a series
    # the order written, ties in time included.
    rng = random.Random(seed)
    keys = [
        SeriesKey("telemetry", field, {**TAGS, "station": station, "origin": "backfill"})
        for station in ("cut", "weld", "paint")
        for field in ("temperature_c", "power_kw")
    ]
    series, times, values = [], [], []
    clock = [0] * len(keys)
    for number in range(5000):
        index = rng.randrange(len(keys))
        clock[index] += rng.choice([0, 0, 1, 7])  # repeated times in a series too
        series.append(index)
        times.append(clock[index])
        values.append(float(number))
    store.write_columns(keys, series, times, values)
    assert store.flush(30)
    for index, key in enumerate(keys):
        written = [(t, v) for s, t, v in zip(series, times, values, strict=True) if s == index]
        (result,) = store.query(key.measurement, key.field, 0, 10**9, tags=key.tags)
        assert [(window.start_ms, window.value) for window in result.windows] == written
    stored = store.read_after(0, 10**6)
    assert sorted(sample.value for sample in stored) == values
