"""TailCache: a moving span read through the cache is what the store returns for it,
while only the samples newer than what is final are read from the store again."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from models.dataset.tail_cache import TailCache
from twin.history.points import Point, SeriesKey, SeriesResult
from twin.history.store import SqliteStore

TAGS = {"site": "s", "area": "a", "line": "l", "origin": "live"}
STATIONS = ("cut", "weld", "paint")


class CountingStore:
    """The real store, with the spans of its raw queries written down."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.raw_spans: list[tuple[int, int]] = []
        self.aggregated = 0

    def series(self, measurement: str | None = None) -> list[SeriesKey]:
        return self.store.series(measurement)

    def query(self, *span: Any, **options: Any) -> list[SeriesResult]:
        # (measurement, field, start_ms, end_ms), a tag filter and any aggregation.
        if set(options) - {"tags"}:
            self.aggregated += 1
        else:
            self.raw_spans.append((span[2], span[3]))
        return self.store.query(*span, **options)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "history.sqlite3", retention_ms=None, retention_every_s=None)
    yield opened
    opened.close()


def write_minutes(store: SqliteStore, rng: random.Random, start_ms: int, end_ms: int) -> None:
    """Samples at random times in [start_ms, end_ms), a few per station and second."""
    points = [
        Point(
            "telemetry",
            {**TAGS, "station": rng.choice(STATIONS)},
            {"temperature_c": rng.uniform(20, 80)},
            rng.randrange(start_ms, end_ms),
        )
        for _ in range((end_ms - start_ms) // 250)
    ]
    store.write(points)
    assert store.flush(30)


def as_rows(results: list[SeriesResult]) -> dict[str, list[tuple[int, float]]]:
    return {
        result.key.tags["station"]: [(window.start_ms, window.value) for window in result.windows]
        for result in results
    }


@pytest.mark.parametrize("seed", [1, 7])
def test_a_moving_span_reads_as_the_store_and_reads_only_the_new_tail(
    store: SqliteStore, seed: int
) -> None:
    rng = random.Random(seed)
    counting = CountingStore(store)
    cache = TailCache(counting)  # type: ignore[arg-type]
    span_ms, step_ms = 600_000, 30_000
    written_to = span_ms
    write_minutes(store, rng, 0, written_to)
    for _ in range(12):
        end = written_to
        start = end - span_ms
        # What is older than a minute before the end is final: nothing older comes.
        cache.final_ms = end - 60_000
        counting.raw_spans.clear()
        got = cache.query("telemetry", "temperature_c", start, end)
        want = store.query("telemetry", "temperature_c", start, end)
        assert as_rows(got) == as_rows(want)
        # After the first read, only the part newer than the final mark is read again.
        ((read_start, read_end),) = counting.raw_spans
        assert read_end == end
        assert read_start >= start
        if start > 0:
            assert read_start == end - step_ms - 60_000
        write_minutes(store, rng, written_to, written_to + step_ms)
        written_to += step_ms


def five_minutes_cached(store: SqliteStore, seed: int) -> tuple[CountingStore, TailCache]:
    """Five minutes of samples, all final, and a cache over them."""
    write_minutes(store, random.Random(seed), 0, 300_000)
    counting = CountingStore(store)
    cache = TailCache(counting)  # type: ignore[arg-type]
    cache.final_ms = 300_000
    return counting, cache


def test_a_span_that_starts_earlier_than_the_cache_is_read_whole(store: SqliteStore) -> None:
    counting, cache = five_minutes_cached(store, seed=3)
    cache.query("telemetry", "temperature_c", 100_000, 300_000)
    counting.raw_spans.clear()
    got = cache.query("telemetry", "temperature_c", 50_000, 300_000)
    assert counting.raw_spans == [(50_000, 300_000)]
    assert as_rows(got) == as_rows(store.query("telemetry", "temperature_c", 50_000, 300_000))


def test_filters_and_aggregates_are_the_stores(store: SqliteStore) -> None:
    counting, cache = five_minutes_cached(store, seed=5)
    weld = {"station": "weld"}
    got = cache.query("telemetry", "temperature_c", 0, 300_000, tags=weld)
    assert as_rows(got) == as_rows(store.query("telemetry", "temperature_c", 0, 300_000, tags=weld))
    assert set(as_rows(got)) == {"weld"}
    # Another filter is another entry: the whole station's span, not the weld's tail.
    cut = {"station": "cut"}
    got = cache.query("telemetry", "temperature_c", 0, 300_000, tags=cut)
    assert set(as_rows(got)) == {"cut"}
    aggregated = cache.query("telemetry", "temperature_c", 0, 300_000, every_ms=60_000)
    assert counting.aggregated == 1
    assert as_rows(aggregated) == as_rows(
        store.query("telemetry", "temperature_c", 0, 300_000, every_ms=60_000)
    )
