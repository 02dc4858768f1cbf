"""Stored samples as InfluxDB line protocol, in records of a few lines each.

Schema: ``<measurement>,<tags> <field>=<value> <time in ms>``, one line per
stored sample, tags sorted by key, the measurement, tag and field names those
of ``twin.history.points.SCHEMA``. Values are floats; NaN and infinities, which line
protocol cannot carry, are skipped and counted as ``dropped``.

Why records of several lines rather than one record per line: the client
pushes every record through its reactive pipeline (window, group-by, map) at a
cost of tens of microseconds each, more than reading and encoding a sample, so
records of ``record_lines`` lines divide the sink's biggest cost by as much
(``bench/store_speed.py``: about 3x the sink's rate of one line per record).
The price is in how requests are cut, never in what is acknowledged: a record
is never split by the client, so an acknowledgement ends on a record boundary.
``record_lines`` divides ``batch_size``, so a backlog (read whole records at a
time) still goes out in requests of exactly ``batch_size`` lines. A stream that
trickles in, read as it comes, still goes out every ``flush_interval`` unless
its reads make more than ``batch_size / record_lines`` records in one interval
(each read ends a record): then a request closes on its count of records with
fewer than ``batch_size`` lines (never more).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from twin.history.points import SeriesKey, StoredSample

# Line protocol escapes, as influxdb-client's own ``Point`` writes them.
_ESCAPE_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n", "\t": r"\t", "\r": r"\r"})
_ESCAPE_KEY = str.maketrans(
    {",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\t": r"\t", "\r": r"\r"}
)


# Most lines a record handed to the WriteApi carries (see the module doc): enough
# to make the client's cost per record small beside the cost per line.
RECORD_LINES_MAX = 10


@dataclass(slots=True)
class LineRecord:
    """One record handed to the WriteApi: lines joined by newlines, never split by the
    client, and the last store position it completes."""

    body: bytes
    lines: int
    end: int  # includes samples after the last line that were dropped (not finite)


def _escape_tag_value(value: str) -> str:
    escaped = value.translate(_ESCAPE_KEY)
    # A trailing backslash would escape the separator after it.
    return escaped + " " if escaped.endswith("\\") else escaped


def series_prefix(measurement: str, field: str, tags: Mapping[str, str]) -> str:
    """What every line of a series starts with: ``<measurement>,<tags> <field>=``."""
    tag_text = "".join(
        f",{key.translate(_ESCAPE_KEY)}={_escape_tag_value(value)}"
        for key, value in sorted(tags.items())
        if key and value
    )
    return f"{measurement.translate(_ESCAPE_MEASUREMENT)}{tag_text} {field.translate(_ESCAPE_KEY)}="


def _value_text(value: float) -> str:
    text = repr(float(value))
    # A whole number needs no ".0" to be a float in line protocol (no "i" suffix).
    return text[:-2] if text.endswith(".0") else text


def encode_line(sample: StoredSample) -> bytes | None:
    """One stored sample as a line of line protocol with ms timestamps (None: not finite)."""
    if not math.isfinite(sample.value):
        return None
    prefix = series_prefix(sample.measurement, sample.field, sample.tags)
    return f"{prefix}{_value_text(sample.value)} {int(sample.time_ms)}".encode()


def encode_records(
    rows: Sequence[tuple[int, int, int, float]],
    series: Mapping[int, SeriesKey],
    record_lines: int,
    prefixes: dict[int, str],
) -> list[LineRecord]:
    """Store rows (``read_rows_after``, not empty) as records of ``record_lines`` lines,
    the lines ``encode_line`` makes; ``prefixes`` caches each series' prefix by id across
    calls, since that part of a line never changes. Non-finite values are skipped."""
    isfinite = math.isfinite
    records: list[LineRecord] = []
    lines: list[str] = []
    for position, series_id, time_ms, value in rows:
        if not isfinite(value):
            continue
        prefix = prefixes.get(series_id)
        if prefix is None:
            key = series[series_id]
            prefix = prefixes[series_id] = series_prefix(key.measurement, key.field, key.tags)
        lines.append(f"{prefix}{_value_text(value)} {time_ms}")
        if len(lines) == record_lines:
            records.append(LineRecord("\n".join(lines).encode(), record_lines, position))
            lines = []
    end = rows[-1][0]
    if lines:
        records.append(LineRecord("\n".join(lines).encode(), len(lines), end))
    elif records:
        records[-1].end = end  # dropped samples after the last line
    return records
