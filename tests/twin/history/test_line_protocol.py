"""Stored samples as line protocol: the lines influxdb-client itself would write,
cut into records that say which store positions they complete."""

from __future__ import annotations

import math
import random

from influxdb_client import Point as InfluxPoint
from influxdb_client import WritePrecision

from twin.history.line_protocol import encode_line, encode_records
from twin.history.points import SeriesKey, StoredSample

PLACE = {"site": "plant-1", "area": "assembly", "line": "line-a"}
STATIONS = ("cut", "weld", "paint")


def test_lines_match_influxdb_clients_own_encoding() -> None:
    rng = random.Random(3)
    samples = [
        StoredSample(1, "telemetry", "temperature_c", {**PLACE, "station": "cut"}, 1_700_000, 21.5),
        StoredSample(2, "kpi", "oee", dict(PLACE), 1_700_001, 1.0),
        StoredSample(3, "loss", "time_s", {"category": "minor stop", "a,b": "x=y"}, 5, -0.001),
        StoredSample(4, "odd name", "f ld", {"station": "ends\\", "empty": ""}, 6, 1e-7),
        *(
            StoredSample(i, "part", "process_speed", {"station": rng.choice(STATIONS)}, i, v)
            for i, v in enumerate(rng.uniform(-1e6, 1e6) for _ in range(50))
        ),
    ]
    for sample in samples:
        reference = (
            InfluxPoint(sample.measurement)
            .field(sample.field, sample.value)
            .time(sample.time_ms, WritePrecision.MS)
        )
        for key, value in sample.tags.items():
            reference = reference.tag(key, value)
        assert encode_line(sample) == reference.to_line_protocol().encode()
    assert encode_line(StoredSample(9, "kpi", "oee", {}, 1, math.nan)) is None
    assert encode_line(StoredSample(9, "kpi", "oee", {}, 1, math.inf)) is None


def test_records_carry_the_lines_encode_line_makes_and_the_positions_they_complete() -> None:
    series = {
        1: SeriesKey("telemetry", "temperature_c", {**PLACE, "station": "cut"}),
        2: SeriesKey("loss", "time_s", {"category": "minor stop", "a,b": "x=y"}),
        3: SeriesKey("odd name", "f ld", {"station": "ends\\", "empty": ""}),
    }
    rng = random.Random(4)
    rows = [
        (position, rng.choice(list(series)), 1_700_000 + position, rng.uniform(-1e6, 1e6))
        for position in range(10, 40)
    ]
    rows[5] = (*rows[5][:3], 3.0)  # a whole number
    rows[7] = (*rows[7][:3], math.nan)  # not finite: dropped, its position still covered
    rows[-1] = (*rows[-1][:3], math.inf)
    prefixes: dict[int, str] = {}

    records = encode_records(rows, series, 4, prefixes)

    finite = [row for row in rows if math.isfinite(row[3])]
    expected = [
        encode_line(StoredSample(position, key.measurement, key.field, key.tags, time_ms, value))
        for position, series_id, time_ms, value in finite
        for key in [series[series_id]]
    ]
    assert b"\n".join(record.body for record in records).split(b"\n") == expected
    assert [record.lines for record in records] == [4] * 7
    assert [record.body.count(b"\n") + 1 for record in records] == [4] * 7
    # Each record completes the position of its last line; the last one the whole read.
    assert [record.end for record in records] == [
        *(finite[index][0] for index in range(3, len(finite) - 1, 4)),
        rows[-1][0],
    ]
    assert set(prefixes) == {series_id for _, series_id, _, _ in finite}
    # The cached prefixes give the same lines again.
    assert encode_records(rows, series, 4, prefixes) == records
    assert encode_records([(50, 1, 1, math.nan)], series, 4, prefixes) == []
