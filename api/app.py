"""The FastAPI application.

``create_app`` takes either a ``Stack`` (the live runtime, started and stopped
by the app's lifespan) or just a ``TwinState`` (for tests and embedding). Every
line's resources (``api.routes.lines``) are served under ``/lines/{line_id}``;
with a ``SiteStack`` (several lines) that is every line of the site, and the
single-line paths (``/twin``, ``/stations``, ``/alarms``, ``/history``,
``/scenarios``, ``/optimize``, ``/stream``, ...) are aliases of its first line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

import twin
from api import dashboard, docs_ui
from api.alarm_book import close_all
from api.deps import every_line
from api.errors import install_error_handlers
from api.jobs import JobManager
from api.limits import DEFAULT_MAX_REQUEST_BYTES, install_limits
from api.metrics.families import HealthSource
from api.metrics.install import install_metrics
from api.routes import aas, alarms, health, lines, models, scenarios, training
from api.routes import jobs as jobs_routes
from api.routes import metrics as metrics_routes
from api.routes import site as site_routes
from api.runtime.line import Stack
from api.runtime.protocol import Runtime
from api.runtime.site import SiteStack
from api.shadow import DEFAULT_PERIOD_S, forecaster
from api.stream import TwinStream
from sensors.alarm_topics import AlarmTopics
from twin.config.line import LineConfig
from twin.history.points import HistoryStore
from twin.learning.observer import LineLearner
from twin.state.economics import ShiftTracker
from twin.state.line import TwinState

log = logging.getLogger(__name__)


async def _every_second(app: FastAPI) -> None:
    """Light periodic work, for every line: check forecasts whose end the line
    passed, fork and score the shadow forecasts (``api.shadow``), keep the
    shift's economics snapshot even when nobody asks for its economics, and run the
    alarm rules (``api.routes.alarms``), so that alarms are raised, cleared and
    recorded whether or not anyone looks."""
    jobs: JobManager = app.state.jobs
    period_s: float = app.state.forecast_period_s
    while True:
        await asyncio.sleep(1.0)
        for line in every_line(app.state):
            scenarios.check_forecasts(jobs, line)
            try:
                forecaster(app.state, line.id, period_s).tick(jobs, line)
            except Exception:  # periodic bookkeeping must never stop
                log.exception("the shadow forecasts of %s failed", line.id)
            if line.config is not None:
                try:
                    line.economics.observe(line.twin.view(), line.config)
                except Exception:  # periodic bookkeeping must never stop
                    log.exception("observing the shift's economics of %s failed", line.id)
            try:
                await run_in_threadpool(alarms.evaluate, app.state, line)
            except Exception:  # periodic bookkeeping must never stop
                log.exception("the alarm rules of %s failed", line.id)


def create_app(
    *,
    stack: Stack | None = None,
    twin_state: TwinState | None = None,
    ingest: HealthSource | None = None,
    history_store: HistoryStore | None = None,
    api_token: str | None = None,
    cors_origins: Sequence[str] = (),
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    models_path: str | None = None,
    config: LineConfig | None = None,
    jobs: JobManager | None = None,
    site: SiteStack | None = None,
    learner: LineLearner | None = None,
    forecast_period_s: float | None = None,
) -> FastAPI:
    """The app; ``api_token`` guards the mutating endpoints (none: they answer 403),
    ``cors_origins`` turns on CORS for those origins only (off by default);
    ``learner`` learns the line when there is no stack (a stack has its own);
    ``forecast_period_s`` (line seconds, 0 off; default the stack's option, else
    ``api.shadow.DEFAULT_PERIOD_S``) spaces the shadow forecasts."""
    # What the lifespan starts and stops: the site (all its lines) or the one line.
    runtime: Runtime | None = site if site is not None else stack
    if runtime is not None:
        stack = runtime.first  # the single-line endpoints serve the site's first line
    if stack is None and twin_state is None:
        raise ValueError("create_app needs a stack or a twin state")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The CLI starts the stack before the server binds, so that a broker
        # problem is a clean error; stopping here runs inside uvicorn's signal
        # handling, so SIGINT and SIGTERM both stop the stack.
        if runtime is not None and not runtime.started:
            await run_in_threadpool(runtime.start)
        if stack is not None:
            app.state.ingest = stack.ingest
            app.state.publisher = stack.publisher
            app.state.history = stack.store
            app.state.writer = stack.writer
        # A stream hub per line: the first line's is the app's (/stream, /healthz).
        app.state.stream = TwinStream(app.state.twin)
        app.state.line_streams = {
            line_id: TwinStream(line.twin)
            for line_id, line in (site.lines.items() if site is not None else ())
            if line is not stack
        }
        hubs: list[TwinStream] = [app.state.stream, *app.state.line_streams.values()]
        for hub in hubs:
            hub.start()
        # Each line's alarm changes go out on its stream as they are made, and on its
        # MQTT tree (retained) when the line has a broker.
        app.state.alarm_topics = {}
        for line in every_line(app.state):
            hub = app.state.line_streams.get(line.id, app.state.stream)
            book = alarms.book_of(app.state, line)
            book.listeners.append(alarms.streamed(hub))
            runtime_line = line.runtime
            # A line with a broker (not one followed over OPC UA alone).
            if (
                runtime_line is not None
                and runtime_line.ingest is not None
                and runtime_line.address is not None
            ):
                publisher = AlarmTopics(runtime_line.ingest.client, runtime_line.topics)
                app.state.alarm_topics[line.id] = publisher
                alarms.publish_all(publisher, book)
                book.listeners.append(alarms.published(publisher, book))
        loop = asyncio.get_running_loop()

        def end_clients() -> None:
            for hub in hubs:
                hub.end_clients()

        # Called by the server when it is asked to stop (api.cli.up.serve), before it
        # waits for open connections: the live streams end, as a client would end
        # them, so the server's graceful shutdown never has to cancel one.
        app.state.before_exit = lambda: loop.call_soon_threadsafe(end_clients)
        if runtime is not None:
            runtime.release_backfill()  # if it waited for the API (Stack.defer_backfill)
        watcher = asyncio.get_running_loop().create_task(_every_second(app), name="every-second")
        try:
            yield
        finally:
            watcher.cancel()
            for hub in hubs:
                await hub.stop()
            await app.state.jobs.close()
            if runtime is not None:
                await run_in_threadpool(runtime.stop)
            close_all(app.state)

    app = FastAPI(
        title="factory-twin",
        version=twin.__version__,
        description="Live digital twin of a production line, built from its MQTT stream.",
        lifespan=lifespan,
        # /docs and /redoc come from api.docs_ui: their assets are in the package.
        docs_url=None,
        redoc_url=None,
    )
    app.state.twin = stack.twin if stack is not None else twin_state
    app.state.stack = stack
    app.state.lag_alarm_s = stack.options.lag_alarm_s if stack is not None else None
    if forecast_period_s is None:
        forecast_period_s = (
            stack.options.forecast_period_s if stack is not None else DEFAULT_PERIOD_S
        )
    app.state.forecast_period_s = forecast_period_s
    app.state.site = site
    app.state.api_token = api_token
    # None: the default registry, resolved per request
    # (api.settings.registry_path).
    app.state.models_path = models_path
    # The first line's config (api.deps builds every line from app.state).
    app.state.config = stack.config if stack is not None else config
    # The first line's learnt line (twin.learning): the stack's, or one fed by the caller.
    app.state.learner = stack.learner if stack is not None else learner
    app.state.jobs = jobs if jobs is not None else JobManager()
    app.state.economics_shifts = ShiftTracker()
    install_limits(app, max_request_bytes)
    install_error_handlers(app)
    if cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
        )
    app.state.ingest = stack.ingest if stack is not None else ingest
    app.state.publisher = stack.publisher if stack is not None else None
    app.state.history = stack.store if stack is not None else history_store
    app.state.writer = stack.writer if stack is not None else None
    install_metrics(app)
    # Every line's resources, at the root for the first line and under /lines/{line_id}.
    lines.install(app.router)
    # The line as Asset Administration Shells (api.routes.aas), at the root and per line.
    app.include_router(aas.router)
    app.include_router(
        aas.router,
        prefix="/lines/{line_id}",
        dependencies=[Depends(lines.line_path)],
        responses=lines.UNKNOWN_LINE,
    )
    app.include_router(health.router)
    app.include_router(metrics_routes.router)
    app.include_router(models.router)
    app.include_router(jobs_routes.router)
    app.include_router(training.router)
    app.include_router(site_routes.router)
    # The live dashboard at / (the API's own docs stay at /docs and /redoc).
    dashboard.install(app)
    docs_ui.install(app)

    return app
