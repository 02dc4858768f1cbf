"""What-if: fork the simulation from the twin's current state and forecast.

``POST /scenarios`` takes a snapshot of the twin (``twin.state.snapshot``: what came
over MQTT, never the simulator's memory), checks the changes and the bounds at
once (422 naming the field), and runs ``factory-twin whatif`` on it as a
background job (``api.jobs``). ``GET /scenarios/{id}`` gives the job, its
forecast once done, and the check of the forecast against what the live line
then did: when the twin's clock passes the forecast's end, the line's good
parts since the fork are compared with the no-change baseline's interval.
``GET /scenarios/snapshot`` is the snapshot a scenario would start from, for
``factory-twin whatif --snapshot``. ``GET /scenarios`` lists every what-if this
API started, newest first, with its horizon and the time of day of its fork.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field

from api.bodies import Whole
from api.deps import JobsDep, LineDep, LineStack, ModelsPathDep
from api.errors import located
from api.jobs import Job, JobManager, JobView
from api.learnt import working_line
from api.routes.jobs import QUEUE_FULL, start_cli_job
from api.security import MUTATING_RESPONSES, TokenDep
from twin.config.line import LineConfig
from twin.experiments.whatif import (
    MAX_HORIZON_S,
    MAX_REPLICATIONS,
    ScenarioChanges,
    ScenarioResult,
    check_bounds,
    check_changes,
    fork_config,
)
from twin.state.line import TwinState
from twin.state.snapshot import LineSnapshot, snapshot_from_view

router = APIRouter(tags=["scenarios"])
log = logging.getLogger(__name__)

NO_LINE: dict[int | str, dict[str, Any]] = {
    503: {"description": "This API runs no line, so it has no line config"},
}
NO_DATA: dict[int | str, dict[str, Any]] = {
    409: {
        "description": "The twin has no data to fork from yet, or it has no line file "
        "and the line learnt from its messages is not ready (the answer says what it lacks)"
    },
}


class ScenarioRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    horizon_h: float = Field(
        default=8.0,
        gt=0,
        le=MAX_HORIZON_S / 3600,
        allow_inf_nan=False,
        description="Hours to forecast from now.",
    )
    replications: Whole = Field(default=10, ge=1, le=MAX_REPLICATIONS)
    seed: Whole | None = Field(
        default=None, ge=0, le=2**31 - 1, description="Null: a random seed (in the result)."
    )
    changes: ScenarioChanges = Field(
        default_factory=ScenarioChanges, description="Empty: the baseline only."
    )
    model: Literal["learned", "nominal"] | None = Field(
        default=None,
        description="The line file the forks run: the line learnt from its messages, or "
        "the nominal one. Null: the learnt line once it is ready (every station's "
        "processing time learnt: GET /model, ready), else the nominal one.",
    )


class ForecastCheck(BaseModel):
    """The forecast against what the live line then did: its good parts per hour
    from the fork to the first look after the horizon's end (a rate, so a look a
    little after the end compares like with like)."""

    status: str = Field(description="waiting (the horizon has not passed yet) or checked.")
    end_sim_time_s: float
    twin_sim_time_s: float | None
    checked_at_sim_time_s: float | None = None
    actual_good_parts: int | None = Field(
        default=None, description="Good parts the line shipped from the fork to the check."
    )
    actual_throughput_per_h: float | None = None
    forecast_throughput_per_h: float | None = Field(
        default=None, description="The no-change baseline's mean."
    )
    low: float | None = Field(
        default=None,
        description="The baseline's 95% prediction interval: where the line's one run over "
        "the horizon was forecast to fall (not the interval of the forecast's mean).",
    )
    high: float | None = None
    within_interval: bool | None = None


class ScenarioView(BaseModel):
    job: JobView
    result: ScenarioResult | None = Field(default=None, description="Set once it succeeded.")
    check: ForecastCheck | None = None


class ScenarioSummary(BaseModel):
    """One what-if, however it was started (the dashboard, the API, a script)."""

    id: str
    url: str = Field(description="GET it for the forecast and its check.")
    job: JobView
    horizon_h: float
    replications: int
    seed: Whole | None = Field(description="Null: a random one (in the result).")
    changes: ScenarioChanges
    fork_sim_time_s: float = Field(description="The twin's clock when it was started.")
    fork_time_of_day: str | None = Field(description="HH:MM then; null: no calendar.")
    fork_shift: str | None = None
    fork_planned_stop: str | None = Field(
        default=None, description="The planned stop in force at the fork, if any."
    )
    model: str = Field(
        default="nominal", description="learned or nominal: the line file the forks ran."
    )
    model_reason: str | None = Field(default=None, description="Why that one.")


class ScenarioList(BaseModel):
    scenarios: list[ScenarioSummary] = Field(description="Newest first.")


def _snapshot(line: LineStack, config: LineConfig) -> LineSnapshot:
    try:
        return snapshot_from_view(line.twin.view(), config)
    except ValueError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc


@router.get(
    "/scenarios/snapshot",
    response_model=LineSnapshot,
    summary="The twin's state a scenario would fork from now",
    responses={**NO_LINE, **NO_DATA},
)
async def scenario_snapshot(line: LineDep) -> LineSnapshot:
    # A line without a file forks its learnt line (409 until that is ready).
    config = line.config if line.config is not None else (await working_line(line, None))[2]
    return _snapshot(line, config)


@router.post(
    "/scenarios",
    status_code=202,
    response_model=JobView,
    summary="Forecast the next hours from the live state, with and without changes",
    dependencies=[TokenDep],
    responses={**MUTATING_RESPONSES, **QUEUE_FULL, **NO_DATA},
)
async def create_scenario(
    line: LineDep, jobs: JobsDep, models_path: ModelsPathDep, body: ScenarioRequest
) -> JobView:
    try:
        check_bounds(body.horizon_h * 3600.0, body.replications)
    except ValueError as exc:
        raise located(["body"], exc) from exc
    if line.config is not None:  # bad changes first: they are the caller's to mend
        try:
            check_changes(line.config, body.changes)
        except ValueError as exc:
            raise located(["body", "changes"], exc) from exc
    model, reason, config = await working_line(line, body.model)
    if line.config is None:
        try:
            check_changes(config, body.changes)
        except ValueError as exc:
            raise located(["body", "changes"], exc) from exc
    snapshot = _snapshot(line, config)
    try:
        fork_config(config, snapshot, body.changes)
    except ValueError as exc:
        # The line's own calendar not fitting the model is a conflict, not bad input.
        status = 409 if str(exc).startswith("snapshot.") else 422
        raise HTTPException(status_code=status, detail=str(exc)) from exc
    job = start_cli_job(
        jobs,
        line,
        models_path,
        "scenario",
        [
            "whatif",
            "--horizon-h",
            repr(body.horizon_h),
            "--replications",
            str(body.replications),
            *(["--seed", str(body.seed)] if body.seed is not None else []),
        ],
        report=False,
        files={
            "--snapshot": snapshot.model_dump_json(),
            "--changes": body.changes.model_dump_json(),
        },
        line_config=config,
    )
    clock = snapshot.clock
    job.request = {
        "line": line.id,
        "horizon_h": body.horizon_h,
        "replications": body.replications,
        "seed": body.seed,
        "changes": body.changes.model_dump(mode="json"),
        "fork_sim_time_s": snapshot.sim_time_s,
        "fork_time_of_day": clock.time_of_day if clock is not None else None,
        "fork_shift": clock.shift if clock is not None else None,
        "fork_planned_stop": clock.planned_stop if clock is not None else None,
        "model": model,
        "model_reason": reason,
    }
    return job.view()


@router.get(
    "/scenarios",
    response_model=ScenarioList,
    summary="The what-ifs this API has run or runs, newest first",
)
def list_scenarios(line: LineDep, jobs: JobsDep) -> ScenarioList:
    return ScenarioList(
        scenarios=[
            ScenarioSummary(
                id=job.id, url=line.link(f"/scenarios/{job.id}"), job=job.view(), **job.request
            )
            for job in jobs.jobs("scenario")
            # started by POST /scenarios, which records its request, on this line
            if "horizon_h" in job.request and line.owns(job)
        ]
    )


def forecast_check(job: Job, twin: TwinState) -> ForecastCheck | None:
    """Waiting until the twin's clock passes the forecast's end, then fixed at the
    first look after it (kept on the job): the app looks every second."""
    if job.result is None:
        return None
    kept = job.result.get("check")
    if kept is not None:
        return ForecastCheck.model_validate(kept)
    end = float(job.result["end_sim_time_s"])
    now = twin.view().sim_time_s
    if now is None or now < end:
        return ForecastCheck(status="waiting", end_sim_time_s=end, twin_sim_time_s=now)
    shipped, _scrapped, _released = twin.counters()
    actual = shipped - int(job.result["counters_at_fork"]["shipped"])
    rate = actual * 3600.0 / (now - float(job.result["fork_sim_time_s"]))
    forecast = job.result["kpis"]["throughput_per_h"]["baseline"] or {}
    # The line did one run: it is judged against where one run falls, the prediction
    # interval; the mean's confidence interval is far narrower and would call a
    # good forecast wrong most of the time.
    low, high = forecast.get("prediction_low"), forecast.get("prediction_high")
    check = ForecastCheck(
        status="checked",
        end_sim_time_s=end,
        twin_sim_time_s=now,
        checked_at_sim_time_s=now,
        actual_good_parts=actual,
        actual_throughput_per_h=rate,
        forecast_throughput_per_h=forecast.get("mean"),
        low=low,
        high=high,
        within_interval=(low <= rate <= high) if low is not None and high is not None else None,
    )
    job.result["check"] = json.loads(check.model_dump_json())
    return check


def check_forecasts(jobs: JobManager, line: LineStack) -> None:
    """Check each finished forecast of ``line`` whose end the live line has passed
    (the app calls this every second, so a check is made soon after the end)."""
    for job in jobs.jobs("scenario"):
        if not line.owns(job):
            continue
        if job.status == "succeeded" and job.result and "check" not in job.result:
            try:
                forecast_check(job, line.twin)
            except Exception:  # a bad result must not stop the checks
                log.exception("checking scenario %s failed", job.id)
                job.result["check"] = None


def _scenario_job(jobs: JobManager, line: LineStack, job_id: str) -> Job:
    job = jobs.get(job_id)
    if job is None or job.kind != "scenario":
        raise HTTPException(status_code=404, detail=f"no scenario {job_id!r}")
    if not line.owns(job):
        raise HTTPException(
            status_code=404,
            detail=f"no scenario {job_id!r} on line {line.id!r}: it forecasts line "
            f"{job.request.get('line')!r}",
        )
    return job


@router.get(
    "/scenarios/{job_id}",
    response_model=ScenarioView,
    summary="A scenario: its job, its forecast, and the check against the live line",
    responses={404: {"description": "No such scenario"}},
)
def read_scenario(
    line: LineDep,
    jobs: JobsDep,
    job_id: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9a-f]+$")],
) -> ScenarioView:
    job = _scenario_job(jobs, line, job_id)
    result = None
    if job.result is not None:
        result = ScenarioResult.model_validate(
            {key: value for key, value in job.result.items() if key != "check"}
        )
    return ScenarioView(job=job.view(), result=result, check=forecast_check(job, line.twin))
