"""The site and its lines: drill down from the site to a line, then to a station.

With a site (``factory-twin up --site FILE``), ``GET /site`` lists the lines
with their status and headline KPIs, and the crews they share; every line has
its own twin, served under ``/lines/{line_id}``. Without a site the API serves
one line: ``/lines`` lists it and ``/site`` answers 404.

Every figure here comes from the line's twin, built from that line's MQTT
branch only. The ``published`` counters are the simulated plant's own
publisher's, present when this process runs the plant (as in ``/healthz``).

Commands reach any line: ``POST /lines/{line_id}/stations/{station_id}/commands``
publishes on that line's ``cmd`` topic, as ``/stations/{station_id}/commands``
does for the first line, with the same bodies, token and answers.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.routes.commands import StationCommand, send_to_line, station_fields
from api.routes.economics import get_shift_tracker
from api.security import MUTATING_RESPONSES, TokenDep
from twin.config.line import LineConfig
from twin.contract import CommandAck
from twin.state.economics import EconomicsView, ShiftTracker
from twin.state.line import TwinState
from twin.state.views import LineKpis, LineStatusName, LineView, StationView

if TYPE_CHECKING:
    from api.runtime import Stack

router = APIRouter(tags=["site"])

LineIdPath = Annotated[str, Path(examples=["line1"])]
StationIdPath = Annotated[str, Path(examples=["machining"])]
_trackers_lock = threading.Lock()


class SharedCrewView(BaseModel):
    id: str
    size: int = Field(description="Technicians in the crew.")
    lines: list[str] = Field(description="The lines whose breakdowns the crew repairs.")


class LineHeadline(BaseModel):
    """One line of the site, without its stations."""

    id: str
    name: str
    area: str
    status: LineStatusName
    sim_time_s: float | None
    topic_prefix: str | None = Field(description="The line's branch of the ISA-95 topic tree.")
    shared_repair_crew: str | None = Field(
        default=None, description="The shared crew that repairs this line, if any."
    )
    down_time_s: float = Field(
        description="Machine-seconds down (broken, or waiting for a technician), all stations."
    )
    kpis: LineKpis
    published: dict[str, int] | None = Field(
        default=None,
        description="What the line's simulated plant published, by message kind; null when "
        "this process does not run the plant.",
    )


class SiteView(BaseModel):
    id: str
    name: str
    lines: list[LineHeadline]
    shared_repair_crews: list[SharedCrewView]


def _lines(request: Request) -> dict[str, tuple[TwinState, Stack | None]]:
    """Every line the API serves: the site's, or the one line's."""
    state = request.app.state
    site: Any = getattr(state, "site", None)
    if site is not None:
        return {line_id: (stack.twin, stack) for line_id, stack in site.lines.items()}
    twin: TwinState = state.twin
    return {twin.line: (twin, getattr(state, "stack", None))}


def _line(request: Request, line_id: str) -> tuple[TwinState, Stack | None]:
    lines = _lines(request)
    found = lines.get(line_id)
    if found is None:
        raise HTTPException(
            status_code=404,
            detail=f"line_id {line_id!r} is unknown; lines: {', '.join(lines)}",
        )
    return found


def _headline(twin: TwinState, stack: Stack | None, crew: str | None) -> LineHeadline:
    view = twin.view()
    publisher = stack.publisher if stack is not None else None
    return LineHeadline(
        id=view.line,
        name=view.name,
        area=view.area,
        status=view.status,
        sim_time_s=view.sim_time_s,
        topic_prefix=stack.topics.prefix if stack is not None else None,
        shared_repair_crew=crew,
        down_time_s=sum(station.kpis.down_time_s for station in view.stations),
        kpis=view.kpis,
        published=dict(publisher.published) if publisher is not None else None,
    )


def _headlines(request: Request) -> list[LineHeadline]:
    site: Any = getattr(request.app.state, "site", None)
    headlines = []
    for line_id, (twin, stack) in _lines(request).items():
        crew = site.site.crew_of(line_id) if site is not None else None
        headlines.append(_headline(twin, stack, crew.id if crew is not None else None))
    return headlines


@router.get(
    "/site",
    response_model=SiteView,
    summary="The site: its lines with status and headline KPIs, and shared crews",
    responses={404: {"description": "This API serves one line, not a site"}},
)
def read_site(request: Request) -> SiteView:
    site: Any = getattr(request.app.state, "site", None)
    if site is None:
        raise HTTPException(
            status_code=404,
            detail="this API serves one line, not a site (start it with --site FILE); see /lines",
        )
    config = site.site
    return SiteView(
        id=config.site.id,
        name=config.site.name or config.site.id,
        lines=_headlines(request),
        shared_repair_crews=[
            SharedCrewView(id=crew.id, size=crew.size, lines=list(crew.lines))
            for crew in config.shared_repair_crews
        ],
    )


@router.get("/lines", response_model=list[LineHeadline], summary="Every line, in site order")
def list_lines(request: Request) -> list[LineHeadline]:
    return _headlines(request)


@router.get(
    "/lines/{line_id}",
    response_model=LineView,
    summary="One line: stations, buffers, KPIs (what /twin is for a single line)",
    responses={404: {"description": "Unknown line"}},
)
def read_line(line_id: LineIdPath, request: Request) -> Response:
    twin, _ = _line(request, line_id)
    return Response(twin.view_json(), media_type="application/json")


@router.get(
    "/lines/{line_id}/stations",
    response_model=list[StationView],
    summary="A line's stations in line order",
    responses={404: {"description": "Unknown line"}},
)
def list_line_stations(line_id: LineIdPath, request: Request) -> list[StationView]:
    twin, _ = _line(request, line_id)
    return twin.view().stations


@router.get(
    "/lines/{line_id}/stations/{station_id}",
    response_model=StationView,
    summary="One station of one line",
    responses={404: {"description": "Unknown line or station"}},
)
def read_line_station(
    line_id: LineIdPath, station_id: StationIdPath, request: Request
) -> StationView:
    twin, _ = _line(request, line_id)
    stations = twin.view().stations
    for station in stations:
        if station.id == station_id:
            return station
    raise _unknown_station(twin, line_id, station_id)


def _unknown_station(twin: TwinState, line_id: str, station_id: str) -> HTTPException:
    known = ", ".join(twin.station_ids()) or "none seen yet"
    return HTTPException(
        status_code=404,
        detail=f"station_id {station_id!r} is unknown on line {line_id!r}; known stations: {known}",
    )


@router.post(
    "/lines/{line_id}/stations/{station_id}/commands",
    response_model=CommandAck,
    summary="Send a command to a station of any line and return its ack",
    dependencies=[TokenDep],
    responses={
        **MUTATING_RESPONSES,
        404: {"description": "Unknown line or station"},
        503: {"description": "The line is not connected to this API, or the broker is unreachable"},
        504: {"description": "No ack in time"},
    },
)
async def line_station_command(
    request: Request,
    line_id: Annotated[str, Path(min_length=1, max_length=64, examples=["line1"])],
    station_id: Annotated[str, Path(min_length=1, max_length=64, examples=["machining"])],
    body: StationCommand,
) -> CommandAck:
    twin, stack = _line(request, line_id)
    known = set(twin.station_ids())
    if known and station_id not in known:
        raise _unknown_station(twin, line_id, station_id)
    return await run_in_threadpool(
        send_to_line, stack, station_id, body.action, station_fields(body), body.timeout_s
    )


def _line_tracker(request: Request, line_id: str, first: bool) -> ShiftTracker:
    """The first line keeps the app's tracker (so that this equals ``/economics``);
    every other line gets one of its own."""
    if first:
        return get_shift_tracker(request)
    state = request.app.state
    with _trackers_lock:
        trackers: dict[str, ShiftTracker] | None = getattr(state, "line_economics_shifts", None)
        if trackers is None:
            trackers = state.line_economics_shifts = {}
        return trackers.setdefault(line_id, ShiftTracker())


@router.get(
    "/lines/{line_id}/economics",
    response_model=EconomicsView,
    summary="One line's money lost, cost and energy per good part, loss Pareto",
    responses={
        404: {"description": "Unknown line"},
        503: {"description": "The app has no config for this line, so no prices."},
    },
)
def read_line_economics(line_id: LineIdPath, request: Request) -> EconomicsView:
    twin, stack = _line(request, line_id)
    first = next(iter(_lines(request))) == line_id
    config: LineConfig | None = stack.config if stack is not None else None
    if config is None and first:
        config = getattr(request.app.state, "config", None)
    if config is None:
        raise HTTPException(status_code=503, detail="no line config: this API has no prices")
    return _line_tracker(request, line_id, first).observe(twin.view(), config)
