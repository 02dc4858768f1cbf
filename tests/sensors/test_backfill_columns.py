"""The backfill's columns: every sample comes back, each series named once."""

from __future__ import annotations

from array import array
from collections import Counter

from sensors.backfill_columns import MAX_TAGS_BY_IDENTITY, Columns
from twin.history.points import Point, SeriesKey


def _samples(points: list[Point]) -> list[tuple[SeriesKey, int, float]]:
    return [
        (SeriesKey(point.measurement, name, dict(point.tags)), point.time_ms, value)
        for point in points
        for name, value in point.fields.items()
    ]


Taken = tuple[list[SeriesKey], "array[int]", "array[int]", "array[float]", Counter[str]]


def _read(taken: list[Taken]) -> list[tuple[SeriesKey, int, float]]:
    """The samples of successive takes, with each series number resolved by its name."""
    keys: list[SeriesKey] = []
    samples: list[tuple[SeriesKey, int, float]] = []
    for new_keys, series, times, values, _counts in taken:
        keys.extend(new_keys)
        samples.extend(
            (keys[number], time_ms, value)
            for number, time_ms, value in zip(series, times, values, strict=True)
        )
    return samples


def test_columns_give_back_every_sample_and_name_each_series_once() -> None:
    machining = {"station": "machining"}
    points = [
        Point("telemetry", machining, {"temperature_c": 61.5, "vibration_mm_s": 2.25}, 1000),
        Point("telemetry", {"station": "welding"}, {"temperature_c": 90.0}, 1000),
        Point("telemetry", machining, {"temperature_c": 62.0}, 2000),
        # Equal tags in a fresh dict are the same series.
        Point("telemetry", {"station": "machining"}, {"vibration_mm_s": 2.5}, 3000),
        Point("events", machining, {"good": 1.0}, 3000),
    ]
    columns = Columns()
    columns.write(points[:3])
    first = columns.take()
    columns.write(points[3:])
    assert len(columns) == 2
    second = columns.take()
    assert len(columns) == 0
    assert _read([first, second]) == _samples(points)
    named = first[0] + second[0]
    distinct = {repr(key) for key, _, _ in _samples(points)}
    assert sorted(map(repr, named)) == sorted(distinct)
    assert second[0] == [SeriesKey("events", "good", machining)]
    assert columns.points == len(points)
    assert columns.points_by_measurement == {"telemetry": 4, "events": 1}


def test_tags_made_afresh_for_each_point_are_one_series_and_not_remembered_forever() -> None:
    columns = Columns()
    points = [
        Point("telemetry", {"station": "machining"}, {"temperature_c": float(i)}, i)
        for i in range(MAX_TAGS_BY_IDENTITY + 10)
    ]
    columns.write(points)
    assert _read([columns.take()]) == _samples(points)
    assert len(columns.keys) == 1
    assert len(columns._by_identity) <= MAX_TAGS_BY_IDENTITY
