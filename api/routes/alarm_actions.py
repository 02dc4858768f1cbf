"""What an operator does about an alarm, and what the alarms did: the ISA-18.2
actions (acknowledge, shelve, unshelve, take out of service, return to service),
each with the API token; the alarm history of a window; and the alarm system's
own figures (``twin.alarms.kpis``).

Every action is stamped with the line's clock (the twin's newest ``sim_time_s``)
and the wall clock, names who did it (``by``; ``operator`` when not given) and is
kept with the alarm's other changes in the line's history file. An action that
makes no sense in the alarm's state (acknowledging an acknowledged alarm,
unshelving one that is not shelved) is a 409 saying the state; an unknown alarm a
404; a bad field a 422 naming it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from api.deps import LineDep, LineStack
from api.errors import invalid
from api.routes.alarms import Alarm, AlarmChange, evaluate, sensor_watch_of, shown
from api.routes.history import parse_time
from api.security import MUTATING_RESPONSES, TokenDep
from models.anomaly.trace import BIN_S
from twin.alarms.kpis import REFERENCES, AlarmKpis, alarm_kpis
from twin.alarms.lifecycle import (
    MAX_SHELF_S,
    REASON_MAX_CHARS,
    AlarmBook,
    AlarmError,
    Priority,
    Transition,
)
from twin.alarms.log import MAX_ROWS, AlarmQuery
from twin.contract import SENSOR_UNITS

router = APIRouter(tags=["alarms"])

AlarmId = Annotated[
    str,
    Path(
        min_length=5,
        max_length=200,
        description="The alarm's id, kind:station:what (GET /alarms).",
        examples=["broken_sensor:welding:-"],
    ),
]
By = Field(
    default="operator",
    min_length=1,
    max_length=64,
    description="Who does it, as the alarm history shows it.",
)
Reason = Field(
    min_length=1,
    max_length=REASON_MAX_CHARS,
    pattern=r"\S",
    description="Why, in a few words (kept in the alarm history).",
)


class Operator(BaseModel):
    """Who acts: the body of an action that needs nothing else (may be left out)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    by: str = By


class Acknowledge(Operator):
    note: str | None = Field(default=None, max_length=REASON_MAX_CHARS)


class Shelve(Operator):
    for_s: float = Field(
        gt=0,
        le=MAX_SHELF_S,
        allow_inf_nan=False,
        description="How long, in seconds of the line's time; the alarm comes back after.",
    )
    reason: str = Reason


class RemoveFromService(Operator):
    reason: str = Reason


class ActionResult(BaseModel):
    alarm: Alarm
    transitions: list[AlarmChange]


Do = Callable[[AlarmBook, float, int], list[Transition]]


def _act(request: Request, line: LineStack, alarm_id: str, do: Do) -> ActionResult:
    """Run the rules first (the alarm as it is now), then ``do`` the action at the
    line's clock; keep what it changed."""
    view, book = evaluate(request.app.state, line)
    try:
        made = do(book.book, view.sim_time_s or 0.0, time.time_ns() // 1_000_000)
    except AlarmError as error:
        if error.kind == "unknown":
            raise HTTPException(status_code=404, detail=error.detail) from None
        if error.kind == "conflict":
            raise HTTPException(status_code=409, detail=error.detail) from None
        field = error.detail.split(":", 1)[0]
        raise invalid(["body", field], error.detail) from None
    book.record(made)
    return ActionResult(
        alarm=shown(line, book.book.get(alarm_id)),
        transitions=[AlarmChange.of(t) for t in made],
    )


def _post(path: str, summary: str) -> Callable[[Callable[..., ActionResult]], Any]:
    return router.post(
        path,
        summary=summary,
        dependencies=[TokenDep],
        response_model=ActionResult,
        responses={
            **MUTATING_RESPONSES,
            404: {"description": "No such alarm"},
            409: {"description": "Not possible in the alarm's state"},
        },
    )


@_post("/alarms/{alarm_id}/ack", "Acknowledge an alarm")
def acknowledge(
    request: Request, line: LineDep, alarm_id: AlarmId, body: Acknowledge | None = None
) -> ActionResult:
    action = body or Acknowledge()
    return _act(
        request,
        line,
        alarm_id,
        lambda book, at_s, wall_ms: book.acknowledge(
            alarm_id, at_s, action.by, note=action.note, wall_ms=wall_ms
        ),
    )


@_post("/alarms/{alarm_id}/shelve", "Shelve an alarm for a while, with a reason")
def shelve(request: Request, line: LineDep, alarm_id: AlarmId, body: Shelve) -> ActionResult:
    return _act(
        request,
        line,
        alarm_id,
        lambda book, at_s, wall_ms: book.shelve(
            alarm_id, at_s, body.for_s, body.reason, body.by, wall_ms=wall_ms
        ),
    )


@_post("/alarms/{alarm_id}/unshelve", "Put a shelved alarm back before its shelf ends")
def unshelve(
    request: Request, line: LineDep, alarm_id: AlarmId, body: Operator | None = None
) -> ActionResult:
    by = (body or Operator()).by
    return _act(
        request,
        line,
        alarm_id,
        lambda book, at_s, wall_ms: book.unshelve(alarm_id, at_s, by, wall_ms=wall_ms),
    )


@_post("/alarms/{alarm_id}/out-of-service", "Take an alarm out of service, with a reason")
def out_of_service(
    request: Request, line: LineDep, alarm_id: AlarmId, body: RemoveFromService
) -> ActionResult:
    return _act(
        request,
        line,
        alarm_id,
        lambda book, at_s, wall_ms: book.remove_from_service(
            alarm_id, at_s, body.reason, body.by, wall_ms=wall_ms
        ),
    )


@_post("/alarms/{alarm_id}/return-to-service", "Return an alarm to service")
def return_to_service(
    request: Request, line: LineDep, alarm_id: AlarmId, body: Operator | None = None
) -> ActionResult:
    by = (body or Operator()).by
    return _act(
        request,
        line,
        alarm_id,
        lambda book, at_s, wall_ms: book.return_to_service(alarm_id, at_s, by, wall_ms=wall_ms),
    )


class AlarmHistory(BaseModel):
    from_ms: int
    to_ms: int
    truncated: bool = Field(description="More records matched than the limit.")
    transitions: list[AlarmChange]


@router.get(
    "/alarms/history",
    response_model=AlarmHistory,
    summary="Every change of the alarms in a window: raised, cleared, acknowledged, shelved",
)
def alarm_history(
    request: Request,
    line: LineDep,
    from_: Annotated[
        str | None, Query(alias="from", description="Unix ms or ISO 8601; default to - 24 h")
    ] = None,
    to: Annotated[str | None, Query(description="Unix ms, ISO 8601 or now (default)")] = None,
    station: Annotated[str | None, Query(max_length=64)] = None,
    sensor: Annotated[
        str | None, Query(max_length=64, description="The sensor, or what the alarm is of.")
    ] = None,
    priority: Priority | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_ROWS)] = 1000,
) -> AlarmHistory:
    # The rules first: a change they make now is in the answer.
    _, book = evaluate(request.app.state, line)
    to_ms = parse_time("to", to, time.time_ns() // 1_000_000 + 1)
    from_ms = parse_time("from", from_, max(0, to_ms - 24 * 3600 * 1000))
    if from_ms > to_ms:
        raise invalid(["query", "from"], f"from ({from_ms}) is after to ({to_ms})")
    found = book.records(AlarmQuery(from_ms, to_ms, station, sensor, priority, limit + 1))
    return AlarmHistory(
        from_ms=from_ms,
        to_ms=to_ms,
        truncated=len(found) > limit,
        transitions=[AlarmChange.of(t) for t in found[:limit]],
    )


class AlarmKpisOut(BaseModel):
    from_s: float = Field(description="Line time (s) the window starts.")
    to_s: float = Field(description="Line time (s) it ends: the twin's clock.")
    annunciated: int
    per_hour: float | None
    intervals: int
    flood_intervals: int
    flood_share: float | None
    peak_per_interval: int
    chattering: list[dict[str, object]]
    stale: list[dict[str, object]]
    bad_actors: list[dict[str, object]]
    references: dict[str, float] = Field(description="ISA-18.2's guidance, to read them against.")

    @classmethod
    def of(cls, kpis: AlarmKpis) -> AlarmKpisOut:
        return cls(
            from_s=kpis.from_s,
            to_s=kpis.to_s,
            annunciated=kpis.annunciated,
            per_hour=kpis.per_hour,
            intervals=kpis.intervals,
            flood_intervals=kpis.flood_intervals,
            flood_share=kpis.flood_share,
            peak_per_interval=kpis.peak_per_interval,
            chattering=[vars(c) for c in kpis.chattering],
            stale=[vars(s) for s in kpis.stale],
            bad_actors=[vars(b) for b in kpis.bad_actors],
            references=REFERENCES,
        )


@router.get(
    "/alarms/kpis",
    response_model=AlarmKpisOut,
    summary="The alarm system's figures (ISA-18.2): alarms an hour, floods, chattering, "
    "stale alarms, bad actors",
)
def alarm_system_kpis(
    request: Request,
    line: LineDep,
    hours: Annotated[
        float,
        Query(
            gt=0,
            le=24 * 31,
            description="The window: this many line hours to now (at most the line's life).",
        ),
    ] = 24.0,
) -> AlarmKpisOut:
    view, book = evaluate(request.app.state, line)
    to_s = view.sim_time_s or 0.0
    # Line time starts at 0 (the contract's sim_time_s): a young line's window is
    # its life so far, so that its alarms an hour are not spread over hours it never ran.
    from_s = max(0.0, to_s - hours * 3600.0)
    return AlarmKpisOut.of(alarm_kpis(book.records(), from_s, to_s))


# The band drawn about the expectation: this many prediction spreads each way.
BAND_SD = 3.0


class TrendPoint(BaseModel):
    at_s: float = Field(description="Line time (s) the bin starts.")
    readings: int = Field(description="Readings in the bin.")
    reading: float = Field(description="Their mean.")
    lowest: float
    highest: float
    expected: float | None = Field(
        description="The mean reading the watch expected, over the readings it judged; "
        "null when it judged none (a state clean history never showed)."
    )
    low: float | None = Field(description="expected - band_sd x the prediction spread.")
    high: float | None = Field(description="expected + band_sd x the prediction spread.")


class AlarmTrend(BaseModel):
    alarm_id: str
    station: str
    sensor: str
    unit: str = Field(description="The readings' unit.")
    kind: str | None = Field(description="The latest occurrence's kind: offset, spike...")
    started_s: float | None = Field(description="Line time (s) the fault began.")
    raised_s: float | None = Field(description="Line time (s) it was raised.")
    cleared_s: float | None = Field(description="Line time (s) it cleared; null while active.")
    from_s: float
    to_s: float
    bin_s: float = Field(description="Each point's span, line seconds.")
    band_sd: float = Field(description="The band's half-width in prediction spreads.")
    points: list[TrendPoint]
    note: str | None = Field(description="Why there are no points, when there are none.")


@router.get(
    "/alarms/{alarm_id}/trend",
    response_model=AlarmTrend,
    summary="A sensor alarm's trend: the sensor's readings around it against the band "
    "the sensor watch expected",
    responses={
        404: {"description": "No such alarm"},
        409: {"description": "Not an alarm of the sensor watch"},
    },
)
def alarm_trend(
    request: Request,
    line: LineDep,
    alarm_id: AlarmId,
    before_s: Annotated[
        float, Query(gt=0, le=86_400, description="Line seconds shown before the fault began.")
    ] = 1800.0,
    after_s: Annotated[
        float, Query(gt=0, le=86_400, description="Line seconds shown after it cleared.")
    ] = 1800.0,
) -> AlarmTrend:
    view, book = evaluate(request.app.state, line)
    try:
        alarm = book.book.get(alarm_id)
    except AlarmError as error:
        raise HTTPException(status_code=404, detail=error.detail) from None
    key = alarm.key
    if key.kind != "sensor" or key.station is None or key.sensor is None:
        raise HTTPException(
            status_code=409,
            detail=f"{alarm_id} is a {key.kind} alarm: only the sensor watch's alarms "
            "have an expected band",
        )
    watch = sensor_watch_of(line)
    latest = watch.latest(key.station, key.sensor) if watch is not None else None
    now_s = view.sim_time_s or 0.0
    evidence = alarm.evidence or {}
    if latest is not None:
        kind, started, raised, cleared = (
            latest.kind,
            latest.started_s,
            latest.raised_s,
            latest.cleared_s,
        )
    else:  # raised before the twin's restart: what the book kept
        kind = evidence.get("kind")
        started = evidence.get("since_s", alarm.since_s)
        raised = evidence.get("raised_s", alarm.since_s)
        cleared = None if alarm.active else alarm.changed_s
    begun = started if started is not None else now_s
    from_s = max(0.0, begun - before_s)
    to_s = min(now_s, (cleared if cleared is not None else now_s) + after_s)
    kept = watch.trace(key.station, key.sensor, from_s, to_s) if watch is not None else None
    points = [
        TrendPoint(
            at_s=p.start_s,
            readings=p.readings,
            reading=p.reading,
            lowest=p.lowest,
            highest=p.highest,
            expected=p.expected,
            low=None if p.expected is None or p.spread is None else p.expected - BAND_SD * p.spread,
            high=None
            if p.expected is None or p.spread is None
            else p.expected + BAND_SD * p.spread,
        )
        for p in kept or []
    ]
    note = None
    if not points:
        note = (
            "this line runs no sensor watch"
            if watch is None
            else "the watch kept no readings of this window: it keeps a day of line time "
            "from when it began to judge, which a restart of the twin starts anew"
        )
    return AlarmTrend(
        alarm_id=alarm_id,
        station=key.station,
        sensor=key.sensor,
        unit=SENSOR_UNITS.get(key.sensor, ""),
        kind=kind,
        started_s=started,
        raised_s=raised,
        cleared_s=cleared,
        from_s=from_s,
        to_s=to_s,
        bin_s=BIN_S,
        band_sd=BAND_SD,
        points=points,
        note=note,
    )
