"""A read-through cache of raw history queries, for readers that re-read a moving span.

Live scoring reads the same day of history every few seconds, shifted a little
(``models.live``). Samples older than ``final_ms`` are taken as final: they are
kept from earlier reads, and a query reads from the store only what is newer
than what it holds. The result is what the store would return for the span, as
long as no sample older than ``final_ms`` arrives after it was read. Aggregated
queries go to the store.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from typing import Any

from twin.history.points import HistoryStore, SeriesKey, SeriesResult, Window

# series tags -> (its key, its samples in time order)
_Cached = dict[tuple[tuple[str, str], ...], tuple[SeriesKey, list[Window]]]


class TailCache:
    """A read-through cache for ``from_history``'s raw queries: samples older than
    ``final_ms`` are kept from earlier reads; only newer ones are read again."""

    def __init__(self, store: HistoryStore) -> None:
        self.store = store
        self.final_ms = -(2**62)
        # (measurement, field, tag filter) -> (cached from, cached to (exclusive), samples)
        self._entries: dict[tuple[Any, ...], tuple[int, int, _Cached]] = {}

    def series(self, measurement: str | None = None) -> list[SeriesKey]:
        return self.store.series(measurement)

    def query(
        self,
        measurement: str,
        field: str,
        start_ms: int,
        end_ms: int,
        *,
        tags: Mapping[str, str] | None = None,
        **aggregation: Any,
    ) -> list[SeriesResult]:
        if aggregation:
            return self.store.query(measurement, field, start_ms, end_ms, tags=tags, **aggregation)
        name = (measurement, field, tuple(sorted((tags or {}).items())))
        entry = self._entries.get(name)
        if entry is None or start_ms < entry[0] or end_ms < entry[1]:
            entry = (start_ms, start_ms, {})
        _from_ms, cached_to, cached = entry
        read_from = max(cached_to, start_ms)
        merged: _Cached = {}
        for series, (key, windows) in cached.items():
            merged[series] = (key, windows[bisect.bisect_left(windows, start_ms, key=_start) :])
        for result in self.store.query(measurement, field, read_from, end_ms, tags=tags):
            key, windows = merged.get(_series_id(result.key), (result.key, []))
            merged[_series_id(result.key)] = (key, windows + result.windows)
        keep_to = max(read_from, min(end_ms, self.final_ms))
        self._entries[name] = (
            start_ms,
            keep_to,
            {
                series: (key, windows[: bisect.bisect_left(windows, keep_to, key=_start)])
                for series, (key, windows) in merged.items()
            },
        )
        return [SeriesResult(key, windows) for key, windows in merged.values()]


def _start(window: Window) -> int:
    return window.start_ms


def _series_id(key: SeriesKey) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(key.tags.items()))


__all__ = ["TailCache"]
