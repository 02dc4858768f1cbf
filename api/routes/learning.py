"""The line learnt from its messages (``twin.learning``, docs/learning.md).

``GET /model`` answers the learnt line: the line file with every parameter the
stream has shown enough of put in, each beside its nominal value with its 95%
interval and sample size, and what is not learnt yet. ``GET /model/drift`` lists
the parameters whose interval leaves the nominal value out, the furthest first.
A line the app has no file for is learnt from its messages alone
(``learn_unfiled_line``: no nominal values, so nothing drifts).
``GET /forecasts`` answers the shadow forecasts (``api.shadow``): the learnt line
and the nominal one forecasting the next hour and the rest of the shift from
the twin, each scored against what the line then did, and each model's mean
absolute error and interval coverage. The fits run in a worker thread (about a
second for a line of five stations); ``api.learnt.recent_learnt`` keeps the
latest for the alarms and the shadow forecasts.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.deps import LineDep, LineStack
from api.shadow import DEFAULT_PERIOD_S, ForecastsView, forecaster
from twin.experiments.drift_cost import DriftCost
from twin.learning.line import LearnedLine, LearnedParameter, learn_line, learn_unfiled_line
from twin.learning.observer import LineLearner

router = APIRouter(tags=["learning"])

NO_MODEL: dict[int | str, dict[str, Any]] = {
    409: {"description": "No line file, and the twin knows no station of the line yet."},
    503: {"description": "No learner on this line."},
}


class LineDrift(BaseModel):
    """The learnt parameters that have left their nominal values."""

    drifted: list[LearnedParameter] = Field(
        description="Those whose 95% interval leaves the nominal value out: the costliest "
        "first once the shadow forecasts have priced them (costs), else the furthest first."
    )
    costs: list[DriftCost] = Field(
        default=[],
        description="What each drift costs in good parts an hour, from the latest forecast "
        "job: the learnt line run as it is and with that parameter put back (8 paired runs "
        "of 24 h). Empty until a job has priced them (shadow forecasts on, a line file).",
    )
    costs_at_sim_time_s: float | None = Field(
        default=None, description="The line's clock at the fork that priced them."
    )
    learnt: int = Field(description="How many parameters are learnt.")
    not_learnt: list[str]


def _learn(line: LineStack, learner: LineLearner) -> LearnedLine:
    if line.config is not None:
        return learn_line(line.config, learner)
    try:
        return learn_unfiled_line(line.twin.view(), learner)
    except ValueError as exc:  # no station known yet
        raise HTTPException(status_code=409, detail=str(exc)) from exc


async def _learnt(line: LineDep) -> LearnedLine:
    if line.learner is None:
        raise HTTPException(status_code=503, detail="this line has no learner")
    return await run_in_threadpool(_learn, line, line.learner)


@router.get(
    "/model",
    response_model=LearnedLine,
    summary="The line learnt from its messages, beside the line file",
    responses=NO_MODEL,
)
async def read_model(line: LineDep) -> LearnedLine:
    return await _learnt(line)


@router.get(
    "/model/drift",
    response_model=LineDrift,
    summary="The learnt parameters whose interval leaves the line file's value out",
    responses=NO_MODEL,
)
async def read_model_drift(line: LineDep, request: Request) -> LineDrift:
    learnt = await _learnt(line)
    period: float = getattr(request.app.state, "forecast_period_s", DEFAULT_PERIOD_S)
    priced = forecaster(request.app.state, line.id, period)
    drifted = learnt.drifted()
    cost = {(c.station, c.parameter): c.cost_good_per_h for c in priced.drift_costs}
    if drifted and all((d.station, d.parameter) in cost for d in drifted):
        drifted.sort(key=lambda d: -cost[(d.station, d.parameter)])
    return LineDrift(
        drifted=drifted,
        costs=priced.drift_costs,
        costs_at_sim_time_s=priced.drift_costs_at_s,
        learnt=len(learnt.parameters),
        not_learnt=learnt.not_learnt,
    )


@router.get(
    "/forecasts",
    response_model=ForecastsView,
    summary="Shadow forecasts of the learnt and the nominal line against what the line did",
)
async def read_forecasts(
    line: LineDep,
    request: Request,
    limit: int = Query(default=50, ge=1, le=500, description="Forecasts listed, newest first."),
) -> ForecastsView:
    period: float = getattr(request.app.state, "forecast_period_s", DEFAULT_PERIOD_S)
    return forecaster(request.app.state, line.id, period).view(line, limit)
