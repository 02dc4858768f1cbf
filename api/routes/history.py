"""History: range queries over what the twin recorded, raw or downsampled.

Reads the embedded store (the hot store). Times are Unix milliseconds or ISO
8601; ``every`` downsamples into windows (``30s``, ``5m``, ``1h`` or
milliseconds) with ``agg`` = mean, min, max or last. Imported history
(``origin=backfill``) and live history are merged unless ``origin`` asks for one.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Annotated, Literal, get_args

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from api.deps import HistoryDep
from api.errors import invalid
from twin.history.points import SCHEMA, Aggregate

router = APIRouter(tags=["history"])

DEFAULT_SPAN_MS = 3600 * 1000
# Raw answers larger than this must be downsampled: one request, bounded work.
MAX_RAW_SAMPLES = 100_000
MAX_WINDOWS = 100_000
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
# An enum in the OpenAPI schema: a client (or a fuzzer) sees which values are valid.
Measurement = Literal["telemetry", "part", "state", "kpi", "loss", "alarm"]
if set(get_args(Measurement)) != set(SCHEMA):  # pragma: no cover - caught by any test run
    raise RuntimeError(f"Measurement {get_args(Measurement)} is out of step with {list(SCHEMA)}")


class HistoryPoint(BaseModel):
    t_ms: int = Field(description="Window start (or sample time when raw), Unix ms.")
    value: float
    count: int = Field(description="Samples in the window (1 when raw).")


class HistorySeries(BaseModel):
    tags: dict[str, str]
    points: list[HistoryPoint]


class HistoryAnswer(BaseModel):
    measurement: str
    field: str
    start_ms: int
    end_ms: int
    every_ms: int | None
    aggregate: Aggregate | None
    series: list[HistorySeries]


class SeriesInfo(BaseModel):
    measurement: str
    field: str
    tags: dict[str, str]


def _bad(field: str, problem: str) -> HTTPException:
    return invalid(["query", field], problem)


# The store keeps Unix ms; a time outside 1970 .. 9999 is a typo, and one far
# outside it does not fit SQLite's integers (it was a 500).
EARLIEST_MS = 0
LATEST_MS = int(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp() * 1000)


def parse_time(field: str, text: str | None, default_ms: int) -> int:
    """Unix ms, ISO 8601 (a zone, or UTC), or ``now``; empty is the default."""
    if text is None or text == "":
        return default_ms
    if text == "now":
        return int(time.time() * 1000)
    if re.fullmatch(r"-?\d+", text):
        value = int(text)
    else:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise _bad(
                field, f"{text!r} is neither Unix milliseconds nor an ISO 8601 time"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.now().astimezone().tzinfo)
        try:
            value = int(moment.timestamp() * 1000)
        except (OverflowError, ValueError):
            value = -1  # before the epoch in a zone where it does not fit
    if not EARLIEST_MS <= value <= LATEST_MS:
        raise _bad(
            field,
            f"{text!r} is outside 1970-01-01 .. 9999-12-31 (Unix ms {EARLIEST_MS} .. {LATEST_MS})",
        )
    return value


def parse_every(text: str | None) -> int | None:
    if text is None:
        return None
    if re.fullmatch(r"\d+", text):
        every = int(text)
    else:
        match = _DURATION.match(text)
        if match is None:
            raise _bad("every", f"{text!r} is not a duration such as 500ms, 30s, 5m, 1h or 1d")
        every = int(float(match.group(1)) * _UNIT_MS[match.group(2)])
    if every <= 0:
        raise _bad("every", "must be positive")
    if every > LATEST_MS:
        raise _bad("every", f"{text!r} is longer than any range the history can hold")
    return every


@router.get(
    "/history",
    response_model=HistoryAnswer,
    summary="A field's history in a time range, raw or downsampled per window",
)
def read_history(
    store: HistoryDep,
    measurement: Annotated[
        Measurement, Query(description="What was recorded", examples=["telemetry"])
    ],
    field: Annotated[
        str,
        Query(
            description="A field of the measurement, e.g. temperature_c", examples=["temperature_c"]
        ),
    ],
    start: Annotated[
        str | None, Query(description="Unix ms or ISO 8601; default end - 1 h")
    ] = None,
    end: Annotated[str | None, Query(description="Unix ms, ISO 8601 or now (default)")] = None,
    every: Annotated[
        str | None, Query(description="Window: 30s, 5m, 1h, or ms", examples=["5m"])
    ] = None,
    agg: Annotated[Aggregate, Query(description="Aggregate per window")] = "mean",
    station: str | None = None,
    machine: str | None = None,
    category: str | None = None,
    origin: Annotated[str | None, Query(pattern="^(live|backfill)$")] = None,
) -> HistoryAnswer:
    known = SCHEMA[measurement]
    if field not in known and not (measurement == "part" and field.startswith("process_")):
        raise _bad("field", f"{measurement} has no field {field!r}; its fields: {list(known)}")
    end_ms = parse_time("end", end, int(time.time() * 1000))
    start_ms = parse_time("start", start, max(EARLIEST_MS, end_ms - DEFAULT_SPAN_MS))
    if start_ms >= end_ms:
        raise _bad("start", f"start ({start_ms}) must be before end ({end_ms})")
    every_ms = parse_every(every)
    if every_ms is not None and (end_ms - start_ms) // every_ms > MAX_WINDOWS:
        raise _bad("every", f"more than {MAX_WINDOWS} windows: widen the window or the range")
    tags = {
        name: value
        for name, value in (
            ("station", station),
            ("machine", machine),
            ("category", category),
            ("origin", origin),
        )
        if value is not None
    }
    results = store.query(
        measurement, field, start_ms, end_ms, tags=tags, every_ms=every_ms, aggregate=agg
    )
    if every_ms is None:
        total = sum(len(result.windows) for result in results)
        if total > MAX_RAW_SAMPLES:
            raise _bad(
                "every", f"{total} raw samples in the range (limit {MAX_RAW_SAMPLES}): downsample"
            )
    return HistoryAnswer(
        measurement=measurement,
        field=field,
        start_ms=start_ms,
        end_ms=end_ms,
        every_ms=every_ms,
        aggregate=agg if every_ms is not None else None,
        series=[
            HistorySeries(
                tags=dict(result.key.tags),
                points=[
                    HistoryPoint(t_ms=window.start_ms, value=window.value, count=window.count)
                    for window in result.windows
                ],
            )
            for result in results
        ],
    )


@router.get(
    "/history/series", response_model=list[SeriesInfo], summary="The stored series, by measurement"
)
def list_series(store: HistoryDep, measurement: Measurement | None = None) -> list[SeriesInfo]:
    return [
        SeriesInfo(measurement=key.measurement, field=key.field, tags=dict(key.tags))
        for key in store.series(measurement)
    ]
