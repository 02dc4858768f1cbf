"""Shadow forecasts on the live line: the learnt line and the nominal one,
forked from the twin every ``period_s`` of line time, scored when the line has
run the horizon (``twin.experiments.shadow``, docs/learning.md).

Each line has a ``ShadowForecaster``; the app's periodic task calls ``tick``
every second. A tick scores the forecasts whose horizon the twin's clock has
passed, with the line's good parts and scrap at the horizon's end (interpolated
between the two ticks around it: the twin's counters are read once a second),
takes in the forecasts of a finished job, and, once ``period_s`` of line time
has passed since the last fork (and ``MIN_WALL_S`` of wall time) and production
is planned now, forks again:
the learnt line (``api.learnt.recent_learnt``, in a worker thread) and
the line file go to a ``forecast`` job, which runs both in a child process, so
the API never simulates, and prices each drift of the learnt line in good
parts an hour (``twin.experiments.drift_cost``: ``GET /model/drift`` ranks by
it); a line with no file forecasts with the learnt line
alone (``learn_unfiled_line``). The job is dropped from the job list once its
forecasts are taken. One fork's job at a time: a fork that finds the queue
full waits for the next tick. The horizons are the next hour and the rest of
the shift (the next planned stop of an hour or more), or the next 8 h on a line
that runs around the clock or announced no calendar.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, ValidationError

from twin.experiments.drift_cost import DriftCost
from twin.experiments.shadow import ModelScore, ShadowForecast, score, summarize
from twin.state.clock import shift_end_s

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from api.deps import LineStack
    from api.jobs import Job, JobManager
    from twin.state.views import LineView

log = logging.getLogger(__name__)

DEFAULT_PERIOD_S = 3600.0
NEXT_HOUR_S = 3600.0
# A line with no shift end (around the clock, or no calendar announced).
OPEN_HORIZON_S = 8 * 3600.0
# Forecasts kept per line, waiting and scored together (the oldest go first).
KEEP = 500
# At most one fork per this many wall seconds: a line run far faster than real
# time (speed 600: an hour of line time every 6 s) must not keep a core busy.
MIN_WALL_S = 30.0


def horizons(view: LineView) -> list[tuple[str, float]]:
    """What a fork at the view's clock forecasts: (label, seconds)."""
    now = view.sim_time_s or 0.0
    found: list[tuple[str, float]] = [("next hour", NEXT_HOUR_S)]
    end = shift_end_s(view.calendar, now) if view.calendar is not None else None
    if end is not None:
        if end - now > NEXT_HOUR_S:
            found.append(("rest of shift", end - now))
    else:
        found.append(("next 8 h", OPEN_HORIZON_S))
    return found


def forecast_in_child(
    view_json: str,
    learnt_json: str,
    nominal_json: str | None,
    spans: list[tuple[str, float]],
    seed: int,
    connection: Connection,
) -> None:
    """The body of a ``forecast`` job's child: each horizon's shadow forecast of
    the learnt line (a draw of its parameters per replication) and the nominal
    one, then ``("result", {"forecasts": [...]})`` or ``("error", why)``."""
    from twin.config.line import LineConfig
    from twin.experiments.drift_cost import price_drift
    from twin.experiments.shadow import Model, ModelLines, learned_lines, shadow_forecast
    from twin.learning.line import LearnedLine
    from twin.state.views import LineView

    try:
        view = LineView.model_validate_json(view_json)
        learnt = LearnedLine.model_validate_json(learnt_json)
        learned = learned_lines(learnt, seed)
        models: dict[Model, LineConfig | ModelLines] = {"learned": learned}
        if nominal_json is not None:  # a line with no file has only the learnt one
            models["nominal"] = LineConfig.model_validate_json(nominal_json)
        made = []
        for done, (label, horizon_s) in enumerate(spans):
            connection.send(("stage", label, done, len(spans)))
            made.append(
                shadow_forecast(
                    view, models, horizon_s=horizon_s, seed=seed + done, label=label
                ).model_dump(mode="json")
            )
        costs = []
        if nominal_json is not None:  # the drifts are priced against the line file
            connection.send(("stage", "pricing the drift", len(spans), len(spans) + 1))
            costs = [c.model_dump(mode="json") for c in price_drift(learnt, seed=seed)]
        connection.send(("result", {"forecasts": made, "drift_costs": costs}))
    except Exception as exc:  # the parent says why the job failed
        connection.send(("error", str(exc) or type(exc).__name__))
    finally:
        connection.close()


class ForecastScores(BaseModel):
    """Each model's error and coverage over the scored forecasts of one horizon."""

    horizon: str
    models: list[ModelScore]


class ForecastsView(BaseModel):
    """The shadow forecasts of one line and how each model has done."""

    period_s: float | None = Field(
        description="Line seconds between forks; null: shadow forecasts are off."
    )
    status: str = Field(
        description="forecasting, off, or why not: no line file, no learner, no data yet."
    )
    scores: list[ForecastScores] = Field(description="By horizon, then over all of them.")
    forecasts: list[ShadowForecast] = Field(description="Newest first (at most `limit`).")
    waiting: int = Field(description="Forecasts whose horizon the line has not yet run.")
    looked_at_sim_time_s: float | None = Field(
        default=None,
        description="The twin's clock when the app last read the line's counters (once a "
        "second): a horizon ending before it is scored.",
    )
    last_error: str | None = Field(
        default=None, description="Why the latest fork failed, if it did."
    )


class ShadowForecaster:
    """One line's shadow forecasts (module doc); ``tick`` runs on the event loop."""

    def __init__(self, period_s: float, keep: int = KEEP) -> None:
        self.period_s = period_s
        self._forecasts: deque[ShadowForecast] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self._job: Job | None = None
        self._forking = False
        self._last_fork_s: float | None = None
        self._last_fork_wall: float | None = None
        self._previous: tuple[float, int, int] | None = None
        self.last_error: str | None = None
        # A line without a file whose learnt line is not ready: no fork yet.
        self.not_ready = False
        # What each drift costs, priced by the latest forecast job, and when.
        self.drift_costs: list[DriftCost] = []
        self.drift_costs_at_s: float | None = None

    # -- the periodic work -------------------------------------------------------------
    def tick(self, jobs: JobManager, line: LineStack) -> None:
        view = line.twin.view()
        now = view.sim_time_s
        if now is None:
            return
        self._score(now, view.kpis.good, view.kpis.scrap)
        self._collect(jobs)
        if self._due(view, line):
            self._forking = True
            self._last_fork_s = now
            self._last_fork_wall = time.monotonic()
            asyncio.get_running_loop().create_task(self._fork(jobs, line, view))

    def _due(self, view: LineView, line: LineStack) -> bool:
        if self.period_s <= 0 or self._forking or self._job is not None:
            return False
        if line.learner is None:
            return False
        now = view.sim_time_s or 0.0
        if self._last_fork_s is not None and now - self._last_fork_s < self.period_s:
            return False
        wall = self._last_fork_wall
        if wall is not None and time.monotonic() - wall < MIN_WALL_S:
            return False
        # No production planned now (a night, a break): nothing worth forecasting.
        return view.clock is None or view.clock.planned_stop is None

    def _score(self, now: float, good: int, scrap: int) -> None:
        before = self._previous
        self._previous = (now, good, scrap)
        with self._lock:
            for index, forecast in enumerate(self._forecasts):
                end = forecast.end_sim_time_s
                if forecast.status == "scored" or now < end:
                    continue
                at_good, at_scrap = good, scrap
                if before is not None and before[0] <= end < now:
                    # Counters between the tick before the end and the one after it.
                    share = (end - before[0]) / (now - before[0])
                    at_good = round(before[1] + share * (good - before[1]))
                    at_scrap = round(before[2] + share * (scrap - before[2]))
                self._forecasts[index] = score(forecast, at_good, at_scrap)

    def _collect(self, jobs: JobManager) -> None:
        job = self._job
        if job is None or job.status in ("queued", "running"):
            return
        self._job = None
        jobs.forget(job)
        if job.status != "succeeded" or job.result is None:
            self.last_error = job.error or job.status
            return
        try:
            made = [ShadowForecast.model_validate(item) for item in job.result["forecasts"]]
            costs = [DriftCost.model_validate(item) for item in job.result.get("drift_costs", [])]
        except (KeyError, TypeError, ValidationError) as exc:
            self.last_error = f"the forecast job's result is unreadable: {exc}"
            return
        self.drift_costs = costs
        self.drift_costs_at_s = made[0].fork_sim_time_s if made else None
        with self._lock:
            self._forecasts.extend(made)
        self.last_error = None

    async def _fork(self, jobs: JobManager, line: LineStack, view: LineView) -> None:
        from starlette.concurrency import run_in_threadpool

        from api.jobs import JobQueueFull
        from api.learnt import recent_learnt

        config, learner = line.config, line.learner
        try:
            if learner is None:  # _due checked: a line never loses it
                return
            learnt = await run_in_threadpool(recent_learnt, config, learner, view)
            if config is None and not learnt.ready:
                # Without a file, what is not learnt yet has no value to fall back on
                # (a placeholder second): wait until every processing time is learnt.
                self._last_fork_s = None  # try again at the next tick due
                self.not_ready = True
                return
            self.not_ready = False
            job = jobs.new_job("forecast")
            job.target = forecast_in_child
            job.target_args = (
                view.model_dump_json(),
                learnt.model_dump_json(),
                config.model_dump_json() if config is not None else None,
                horizons(view),
                int(view.sim_time_s or 0.0),
            )
            job.request = {"line": line.id, "fork_sim_time_s": view.sim_time_s}
            self._job = jobs.start(job)
        except JobQueueFull as exc:
            self._last_fork_s = None  # try again at the next tick
            self.last_error = f"not forked: {exc}"
        except Exception as exc:  # a failed fork must never stop the periodic work
            log.exception("a shadow forecast of %s could not start", line.id)
            self.last_error = f"{type(exc).__name__}: {exc}"
        finally:
            self._forking = False

    # -- what GET /forecasts answers ------------------------------------------------------
    def view(self, line: LineStack, limit: int) -> ForecastsView:
        with self._lock:
            kept = list(self._forecasts)
        labels: list[str] = []
        for forecast in kept:
            if forecast.label not in labels:
                labels.append(forecast.label)
        scores = [
            ForecastScores(horizon=label, models=summarize([f for f in kept if f.label == label]))
            for label in labels
        ]
        if len(labels) > 1:
            scores.append(ForecastScores(horizon="all", models=summarize(kept)))
        return ForecastsView(
            period_s=self.period_s if self.period_s > 0 else None,
            status=self._status(line),
            scores=scores,
            forecasts=list(reversed(kept))[:limit],
            waiting=sum(1 for f in kept if f.status == "waiting"),
            looked_at_sim_time_s=self._previous[0] if self._previous is not None else None,
            last_error=self.last_error,
        )

    def _status(self, line: LineStack) -> str:
        if self.period_s <= 0:
            return "off"
        if line.learner is None:
            return "no learner on this line"
        if self.not_ready and not self._forecasts:
            return (
                "no forecast yet: this twin has no line file, and the line learnt from its "
                "messages is not ready (GET /model: not_learnt)"
            )
        if self._last_fork_s is None and not self._forecasts:
            return "no forecast yet: the first fork comes once the line reports in a shift"
        if line.config is None:
            return "forecasting with the learnt line only: no line file to set beside it"
        return "forecasting"


def forecaster(state: Any, line_id: str, period_s: float) -> ShadowForecaster:
    """The line's forecaster, made on first use and kept on the app's state."""
    kept: dict[str, ShadowForecaster] | None = getattr(state, "shadow_forecasters", None)
    if kept is None:
        kept = state.shadow_forecasters = {}
    if line_id not in kept:
        kept[line_id] = ShadowForecaster(period_s)
    return kept[line_id]


__all__ = [
    "DEFAULT_PERIOD_S",
    "ForecastScores",
    "ForecastsView",
    "ShadowForecaster",
    "forecast_in_child",
    "forecaster",
    "horizons",
]
