"""The backfill's points as columns: series named once, then three arrays.

The recording side of the backfill (``sensors.backfill_pipeline``) writes its
points into ``Columns`` instead of a store: each series (measurement, field and
tags) gets a number the first time it is seen, and every sample becomes a
(series number, time, value) triple in three columns. A batch then crosses the
pipe to the caller as the new series names and three arrays, and the store
inserts it without a Python object per sample.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Mapping, Sequence

from twin.history.points import Point, SeriesKey

# Distinct tags objects the columns remember by identity (see Columns).
MAX_TAGS_BY_IDENTITY = 4096


class Columns:
    """A point sink that keeps samples as three columns (series index, time, value).

    Each series is named once (``keys``, in order of first use) and then referred
    to by its index, so that a week of history crosses the pipe as a few arrays
    and the store inserts it without an object per sample.
    """

    def __init__(self) -> None:
        self.keys: list[SeriesKey] = []
        self._index: dict[tuple[str, tuple[tuple[str, str], ...]], dict[str, int]] = {}
        # The recorder shares one tags dict per station (and machine): a point's
        # series are found by the identity of its tags first. An entry holds its
        # tags, so that the identity cannot be reused while it is cached.
        self._by_identity: dict[tuple[str, int], tuple[object, dict[str, int]]] = {}
        self.sent_keys = 0
        self.points = 0
        self.points_by_measurement: Counter[str] = Counter()
        self._reset()

    def _reset(self) -> None:
        # Lists while a batch fills (list.append is the cheapest call there is; an
        # array's parses its argument each time), arrays once taken (they cross the
        # pipe as their bytes).
        self.series: list[int] = []
        self.times: list[int] = []
        self.values: list[float] = []
        self.batch_points: Counter[str] = Counter()

    def _fields_of(self, measurement: str, tags: Mapping[str, str]) -> dict[str, int]:
        key = (measurement, tuple(tags.items()))
        by_field = self._index.get(key)
        if by_field is None:
            by_field = self._index[key] = {}
        if len(self._by_identity) >= MAX_TAGS_BY_IDENTITY:
            self._by_identity.clear()  # tags made afresh for each point: stop remembering
        self._by_identity[(measurement, id(tags))] = (tags, by_field)
        return by_field

    def write(self, points: Sequence[Point]) -> None:
        add = self.add
        for point in points:
            add(point.measurement, point.tags, point.fields, point.time_ms)

    def add(
        self, measurement: str, tags: Mapping[str, str], fields: Mapping[str, float], time_ms: int
    ) -> None:
        """One point, as its parts (``HistoryRecorder`` hands over each message so)."""
        found = self._by_identity.get((measurement, id(tags)))
        if found is not None and found[0] is tags:
            by_field = found[1]
        else:
            by_field = self._fields_of(measurement, tags)
        series, times, values = self.series, self.times, self.values
        for name, value in fields.items():
            number = by_field.get(name)
            if number is None:
                number = by_field[name] = len(self.keys)
                self.keys.append(SeriesKey(measurement, name, dict(tags)))
            series.append(number)
            times.append(time_ms)
            values.append(value)
        self.batch_points[measurement] += 1

    def __len__(self) -> int:
        return len(self.values)

    def take(self) -> tuple[list[SeriesKey], array[int], array[int], array[float], Counter[str]]:
        """The new series names and the columns since the last take."""
        new_keys = self.keys[self.sent_keys :]
        self.sent_keys = len(self.keys)
        taken = (
            new_keys,
            array("l", self.series),
            array("q", self.times),
            array("d", self.values),
            self.batch_points,
        )
        self.points += sum(self.batch_points.values())
        self.points_by_measurement.update(self.batch_points)
        self._reset()
        return taken
