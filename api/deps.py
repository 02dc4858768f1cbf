"""Typed dependencies: everything a handler reads from the app, resolved per request.

Most of the API is about one line (``api.routes.lines``): ``get_line`` resolves it
from the path, ``/lines/{line_id}/...``, or, for the single-line paths (``/twin``,
``/alarms``, ...), the app's first line. A ``LineStack`` is built per request from
what lives on ``app.state`` (the first line: the app's own twin, ingest, history,
...) or on the site's stack of that line, so that a part set after the app was made
(the stack's lifespan, a test) is seen. Nothing else in the routes reads
``app.state``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request
from starlette.datastructures import State

from api.jobs import Job, JobManager
from api.metrics.families import HealthSource
from api.runtime.line import Stack
from api.runtime.protocol import Runtime
from api.runtime.site import SiteStack
from api.stream import TwinStream
from twin.config.line import LineConfig
from twin.history.points import HistoryStore, HistoryWriter
from twin.learning.observer import LineLearner
from twin.state.economics import ShiftTracker
from twin.state.line import TwinState

_lock = threading.Lock()


@dataclass(frozen=True)
class LineStack:
    """One line as the API serves it: its twin and what feeds and prices it."""

    id: str
    # The path prefix it was asked under: "" for the single-line paths, else
    # /lines/{id}; links in answers (alarms) stay under the same prefix.
    path: str
    twin: TwinState
    economics: ShiftTracker
    first: bool = True
    config: LineConfig | None = None
    runtime: Stack | None = None
    ingest: HealthSource | None = None
    publisher: HealthSource | None = None
    history: HistoryStore | None = None
    writer: HistoryWriter | None = None
    stream: TwinStream | None = None
    learner: LineLearner | None = None

    def link(self, path: str) -> str:
        """``path`` (``/stations/x``, ``/twin``) of this line, as it was asked for."""
        if self.path and path == "/twin":
            return self.path
        return f"{self.path}{path}"

    def owns(self, job: Job) -> bool:
        """A job started for this line (jobs started before lines were told apart
        belong to the first)."""
        line = job.request.get("line")
        return line == self.id if line is not None else self.first


def _site(state: State) -> SiteStack | None:
    site: SiteStack | None = getattr(state, "site", None)
    return site


def _first_line(state: State, path: str) -> LineStack:
    twin: TwinState = state.twin
    return LineStack(
        id=twin.line,
        path=path,
        first=True,
        twin=twin,
        config=getattr(state, "config", None),
        runtime=getattr(state, "stack", None),
        ingest=getattr(state, "ingest", None),
        publisher=getattr(state, "publisher", None),
        history=getattr(state, "history", None),
        writer=getattr(state, "writer", None),
        economics=_shift_tracker(state),
        stream=getattr(state, "stream", None),
        learner=getattr(state, "learner", None),
    )


def _site_line(state: State, stack: Stack, path: str) -> LineStack:
    line_id = stack.line_id
    with _lock:
        trackers: dict[str, ShiftTracker] | None = getattr(state, "line_economics_shifts", None)
        if trackers is None:
            trackers = state.line_economics_shifts = {}
        tracker = trackers.setdefault(line_id, ShiftTracker())
    streams: dict[str, TwinStream] = getattr(state, "line_streams", None) or {}
    return LineStack(
        id=line_id,
        path=path,
        first=False,
        twin=stack.twin,
        config=stack.config,
        runtime=stack,
        ingest=stack.ingest,
        publisher=stack.publisher,
        history=stack.store,
        writer=stack.writer,
        economics=tracker,
        stream=streams.get(line_id),
        learner=stack.learner,
    )


def line_ids(state: State) -> list[str]:
    """Every line the app serves, the first first."""
    site = _site(state)
    if site is not None:
        return list(site.lines)
    twin: TwinState = state.twin
    return [twin.line]


def find_line(state: State, line_id: str | None) -> LineStack:
    """The line ``line_id`` (None: the first, as the single-line paths serve it);
    404 naming the known lines when there is no such line."""
    first: TwinState = state.twin
    if line_id is None:
        return _first_line(state, "")
    path = f"/lines/{quote(line_id, safe='')}"
    if line_id == first.line:
        return _first_line(state, path)
    site = _site(state)
    stack = site.lines.get(line_id) if site is not None else None
    if stack is None:
        raise HTTPException(
            status_code=404,
            detail=f"line_id {line_id!r} is unknown; lines: {', '.join(line_ids(state))}",
        )
    return _site_line(state, stack, path)


def every_line(state: State) -> list[LineStack]:
    """Every line the app serves, as its ``/lines/{line_id}`` paths serve it."""
    return [find_line(state, line_id) for line_id in line_ids(state)]


def get_lines(request: Request) -> list[LineStack]:
    return every_line(request.app.state)


async def get_line(request: Request) -> LineStack:
    # async: reading app.state needs no worker thread (a hop per request).
    line_id: str | None = request.path_params.get("line_id")
    return find_line(request.app.state, line_id)


LineDep = Annotated[LineStack, Depends(get_line)]
LinesDep = Annotated[list[LineStack], Depends(get_lines)]


async def get_twin(line: LineDep) -> TwinState:
    return line.twin


def get_ingest_health(line: LineDep) -> HealthSource | None:
    return line.ingest


def get_plant_health(line: LineDep) -> HealthSource | None:
    return line.publisher


def get_opcua_source_health(line: LineDep) -> HealthSource | None:
    """The OPC UA source the line is followed through, if it is."""
    runtime = line.runtime
    return runtime.opcua_source if runtime is not None else None


def get_history(line: LineDep) -> HistoryStore:
    if line.history is None:
        raise HTTPException(status_code=503, detail="history is not available yet")
    return line.history


def get_history_health(line: LineDep) -> HealthSource | None:
    return line.writer


def get_line_config(line: LineDep) -> LineConfig:
    if line.config is None:
        raise HTTPException(status_code=503, detail="no line config: this API has no prices")
    return line.config


def _shift_tracker(state: State) -> ShiftTracker:
    with _lock:
        tracker: ShiftTracker | None = getattr(state, "economics_shifts", None)
        if tracker is None:
            tracker = state.economics_shifts = ShiftTracker()
    return tracker


def get_shift_tracker(line: LineDep) -> ShiftTracker:
    return line.economics


def get_jobs(request: Request) -> JobManager:
    jobs: JobManager = request.app.state.jobs
    return jobs


def get_site(request: Request) -> SiteStack | None:
    return _site(request.app.state)


def get_models_path(request: Request) -> str | Path | None:
    """The model registry the app was given; None: the default, resolved per request."""
    path: str | Path | None = getattr(request.app.state, "models_path", None)
    return path


def lag_alarm_s(state: State) -> float | None:
    bound: float | None = getattr(state, "lag_alarm_s", None)
    return bound


def lag_alarms_raised(state: State) -> set[str]:
    """The lines whose lag alarm is up (its hysteresis), kept between looks."""
    with _lock:
        raised: set[str] | None = getattr(state, "lag_alarms_raised", None)
        if raised is None:
            raised = state.lag_alarms_raised = set()
    return raised


def get_loaded_models(request: Request) -> dict[tuple[str, str, int, str], Any]:
    """Loaded models, cached per (registry, name, version, sha256)."""
    state = request.app.state
    with _lock:
        cache: dict[tuple[str, str, int, str], Any] | None = getattr(state, "loaded_models", None)
        if cache is None:
            cache = state.loaded_models = {}
    return cache


def get_api_token(request: Request) -> str | None:
    token: str | None = getattr(request.app.state, "api_token", None)
    return token


def get_runtime(request: Request) -> Runtime | None:
    """What the app runs: the site (all its lines) or the one line's stack."""
    state = request.app.state
    runtime: Runtime | None = _site(state) or getattr(state, "stack", None)
    return runtime


def get_stream_stats(request: Request) -> dict[str, int] | None:
    stream: TwinStream | None = getattr(request.app.state, "stream", None)
    return stream.stats() if stream is not None else None


TwinDep = Annotated[TwinState, Depends(get_twin)]
HistoryHealthDep = Annotated[HealthSource | None, Depends(get_history_health)]
HistoryDep = Annotated[HistoryStore, Depends(get_history)]
IngestHealthDep = Annotated[HealthSource | None, Depends(get_ingest_health)]
PlantHealthDep = Annotated[HealthSource | None, Depends(get_plant_health)]
OpcUaSourceHealthDep = Annotated[HealthSource | None, Depends(get_opcua_source_health)]
ConfigDep = Annotated[LineConfig, Depends(get_line_config)]
ShiftTrackerDep = Annotated[ShiftTracker, Depends(get_shift_tracker)]
JobsDep = Annotated[JobManager, Depends(get_jobs)]
SiteDep = Annotated[SiteStack | None, Depends(get_site)]
ModelsPathDep = Annotated[str | Path | None, Depends(get_models_path)]
LoadedModelsDep = Annotated[dict[tuple[str, str, int, str], Any], Depends(get_loaded_models)]
RuntimeDep = Annotated[Runtime | None, Depends(get_runtime)]
StreamStatsDep = Annotated[dict[str, int] | None, Depends(get_stream_stats)]
