"""The per-line router: every resource of one line, defined once, served for every line.

The app mounts it twice: at ``/lines/{line_id}`` for every line of the site (or
the one line), and at the root, where its paths (``/twin``, ``/alarms``,
``/history``, ``/scenarios``, ``/optimize``, ...) are aliases of the first line.
The handlers read their line through ``api.deps.LineDep``, which resolves it
from the path; an unknown ``line_id`` answers 404 naming the known lines.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from api.deps import LineDep
from api.routes import (
    alarm_actions,
    alarms,
    commands,
    economics,
    history,
    kpis,
    learning,
    optimize,
    scenarios,
    stations,
    stream,
    twin,
)

UNKNOWN_LINE: dict[int | str, dict[str, Any]] = {404: {"description": "Unknown line"}}


def line_path(
    line_id: Annotated[str, Path(min_length=1, max_length=64, examples=["line1"])],
    line: LineDep,
) -> None:
    """Declares ``line_id`` (for the schema) and resolves the line, 404 when unknown,
    before anything else of the request (its token, its body) is looked at."""


def line_router() -> APIRouter:
    """Every per-line resource, in the order the app has always served them."""
    router = APIRouter()
    for module in (
        twin,
        stations,
        kpis,
        history,
        commands,
        stream,
        alarms,
        alarm_actions,
        optimize,
        scenarios,
        economics,
        learning,
    ):
        router.include_router(module.router)
    return router


def install(app_router: APIRouter) -> None:
    """The per-line resources at the root (the first line) and under ``/lines/{line_id}``."""
    router = line_router()
    app_router.include_router(router)
    app_router.include_router(
        router,
        prefix="/lines/{line_id}",
        dependencies=[Depends(line_path)],
        responses=UNKNOWN_LINE,
    )
