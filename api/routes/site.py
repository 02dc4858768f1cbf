"""The site and its lines: drill down from the site to a line, then to a station.

With a site (``factory-twin up --site FILE``), ``GET /site`` lists the lines
with their status and headline KPIs, and the crews they share; every line has
its own twin, served under ``/lines/{line_id}``. Without a site the API serves
one line: ``/lines`` lists it and ``/site`` answers 404.

Every figure here comes from the line's twin, built from that line's MQTT
branch only. The ``published`` counters are the simulated plant's own
publisher's, present when this process runs the plant (as in ``/healthz``).

Everything else about one line (its stations and their commands, KPIs, alarms,
history, what-if, the optimizer, economics, the stream) is the per-line router's
(``api.routes.lines``), under ``/lines/{line_id}/...``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response
from pydantic import BaseModel, Field

from api.deps import LineDep, LinesDep, LineStack, SiteDep
from api.runtime.site import SiteStack
from twin.state.views import LineKpis, LineStatusName, LineView

router = APIRouter(tags=["site"])

LineIdPath = Annotated[str, Path(min_length=1, max_length=64, examples=["line1"])]


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


def _headline(line: LineStack, crew: str | None) -> LineHeadline:
    view = line.twin.view()
    stack = line.runtime
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


def _headlines(lines: list[LineStack], site: SiteStack | None) -> list[LineHeadline]:
    headlines = []
    for line in lines:
        crew = site.site.crew_of(line.id) if site is not None else None
        headlines.append(_headline(line, crew.id if crew is not None else None))
    return headlines


@router.get(
    "/site",
    response_model=SiteView,
    summary="The site: its lines with status and headline KPIs, and shared crews",
    responses={404: {"description": "This API serves one line, not a site"}},
)
def read_site(lines: LinesDep, site: SiteDep) -> SiteView:
    if site is None:
        raise HTTPException(
            status_code=404,
            detail="this API serves one line, not a site (start it with --site FILE); see /lines",
        )
    config = site.site
    return SiteView(
        id=config.site.id,
        name=config.site.name or config.site.id,
        lines=_headlines(lines, site),
        shared_repair_crews=[
            SharedCrewView(id=crew.id, size=crew.size, lines=list(crew.lines))
            for crew in config.shared_repair_crews
        ],
    )


@router.get("/lines", response_model=list[LineHeadline], summary="Every line, in site order")
def list_lines(lines: LinesDep, site: SiteDep) -> list[LineHeadline]:
    return _headlines(lines, site)


@router.get(
    "/lines/{line_id}",
    response_model=LineView,
    summary="One line: stations, buffers, KPIs (what /twin is for a single line)",
    responses={404: {"description": "Unknown line"}},
)
async def read_line(line_id: LineIdPath, line: LineDep) -> Response:
    return Response(line.twin.view_json(), media_type="application/json")
