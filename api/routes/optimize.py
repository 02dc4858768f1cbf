"""The yield optimizer: run it as a background job, read its recommendation, apply it.

``POST /optimize`` starts ``factory-twin optimize`` on the line this API serves
(``api.jobs``). ``GET /optimize/recommendation`` is the latest successful run's
recommendation; ``GET /optimize/space`` lists the setpoints it may choose (a
request picks them with ``vars``); ``POST /optimize/apply`` sends it to the line as setpoint
commands over MQTT, the way ``factory-twin optimize --apply`` does, and answers
with each command's ack. Starting and applying need the API token.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from api.bodies import Whole
from api.deps import JobsDep, LineDep, LineStack, ModelsPathDep
from api.jobs import Job, JobManager, JobView
from api.learnt import choose_model, working_line
from api.routes.commands import notice_setpoint
from api.routes.jobs import QUEUE_FULL, start_cli_job
from api.security import MUTATING_RESPONSES, TokenDep
from models.optimizer.confirmation import Confirmation
from models.optimizer.space import DecisionSpace
from twin.config.line import LineConfig
from twin.contract import CommandAck
from twin.state.line import TwinState

router = APIRouter(tags=["optimize"])

Finite = Annotated[float, Field(allow_inf_nan=False)]


class OptimizeRequest(BaseModel):
    """What ``factory-twin optimize`` takes (docs/optimizer.md), bounded for the API."""

    model_config = ConfigDict(extra="forbid", strict=True)

    objective: Literal["good_per_hour", "margin_per_hour"] = "good_per_hour"
    vars: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=8,
        description="The setpoints to choose, 'station.setpoint' or 'station.setpoint:step' "
        "each (e.g. ['printer.speed', 'reflow.temperature_c']); default: the line's "
        "decision space (GET /optimize/space).",
        examples=[["machining.speed", "welding.temperature_c:5"]],
    )
    budget: Whole = Field(default=30, ge=2, le=200, description="Simulator evaluations.")
    hours: float = Field(default=24.0, gt=0, le=168, description="Simulated hours per run.")
    replications: Whole = Field(default=2, ge=1, le=16, description="Seeds per evaluation.")
    seed: Whole = Field(default=0, ge=0, le=2**31 - 1)
    confirm_replications: Whole = Field(
        default=16,
        ge=2,
        le=64,
        description="Fresh runs of each candidate and of today's setpoints before recommending.",
    )
    confirm_doublings: Whole = Field(
        default=2,
        ge=0,
        le=4,
        description="While the gain is not yet clear, the fresh runs double and the "
        "confirmation looks again, at most this many times (2: up to 4 x "
        "confirm_replications).",
    )
    max_defect_rate: Finite | None = Field(default=None, ge=0, le=1)
    min_good_per_hour: Finite | None = Field(default=None, ge=0)
    max_energy_per_part: Finite | None = Field(default=None, gt=0)
    model: Literal["learned", "nominal"] | None = Field(
        default=None,
        description="The line file the search and the confirmation run: the line learnt "
        "from its messages, or the nominal one. Null: the learnt line once it is ready "
        "(GET /model, ready), else the nominal one.",
    )


class Recommendation(BaseModel):
    """The latest successful optimizer run's recommendation."""

    job_id: str
    finished_at: datetime | None
    objective: str
    best_value: float
    feasible: bool = Field(description="False: no point met the constraints (least violating).")
    setpoints: dict[str, dict[str, float]] = Field(
        description="station -> setpoint -> value: the candidate the fresh runs liked best."
    )
    verdict: Literal["change", "keep"] | None = Field(
        default=None,
        description="change: a significant gain over today's setpoints on fresh runs; keep: "
        "none, keep today's (apply refuses).",
    )
    expected: dict[str, float] = Field(
        description="The search's figures at the setpoints, on the search's own seeds; "
        "per-hour figures are per calendar hour."
    )
    unit: str | None = Field(
        default=None, description="What best_value counts: per calendar hour of the horizon."
    )
    confirmation: Confirmation | None = Field(
        default=None,
        description="The recommended and today's setpoints on fresh seeds: what one run of "
        "the horizon will give (95% prediction intervals) and the paired difference.",
    )
    report: str | None = Field(default=None, description="The run's report directory.")
    model: str = Field(
        default="nominal", description="learned or nominal: the line file the run used."
    )
    model_reason: str | None = Field(default=None, description="Why that one.")


class ApplyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    job_id: str | None = Field(
        default=None, max_length=64, description="An optimize job; the latest by default."
    )
    timeout_s: float = Field(default=5.0, ge=0.1, le=30, description="Ack wait per command, s.")


class AppliedSetpoint(BaseModel):
    station: str
    setpoint: str
    value: float
    ack: CommandAck | None = Field(description="Null: no answer within the timeout.")


class ApplyResult(BaseModel):
    job_id: str
    accepted: bool = Field(description="Every command was acknowledged and accepted.")
    acks: list[AppliedSetpoint]


def _nested(flat: dict[str, float]) -> dict[str, dict[str, float]]:
    nested: dict[str, dict[str, float]] = {}
    for key, value in flat.items():
        station, _, name = key.partition(".")
        nested.setdefault(station, {})[name] = float(value)
    return nested


def _recommendation(job: Job) -> Recommendation:
    result = job.result or {}
    return Recommendation(
        job_id=job.id,
        finished_at=job.finished_at,
        objective=result["objective"],
        best_value=result["best_value"],
        feasible=result["feasible"],
        setpoints=_nested(result["setpoints"]),
        verdict=result.get("verdict"),
        expected=result["expected"],
        unit=result.get("unit"),
        confirmation=result.get("confirmation"),
        report=result.get("report"),
        model=job.request.get("model", "nominal"),
        model_reason=job.request.get("model_reason"),
    )


def _find(jobs: JobManager, line: LineStack, job_id: str | None) -> Job:
    """The latest successful optimizer run of ``line``, or its job ``job_id``."""
    # Another line's runs are not this line's: named as such, never served for it.
    of_line = "" if line.first else f" of line {line.id!r}"
    if job_id is None:
        job = next(
            (job for job in jobs.jobs("optimize") if job.status == "succeeded" and line.owns(job)),
            None,
        )
        if job is None:
            raise HTTPException(
                status_code=404, detail=f"no optimizer run{of_line} has finished yet"
            )
        return job
    found = jobs.get(job_id)
    if found is None or found.kind != "optimize" or not line.owns(found):
        raise HTTPException(status_code=404, detail=f"no optimize job {job_id!r}{of_line}")
    if found.status != "succeeded":
        raise HTTPException(status_code=409, detail=f"optimize job {job_id} is {found.status}")
    return found


def _live_setpoints(twin: TwinState, keys: tuple[str, ...]) -> dict[str, float]:
    """Today's setpoints as the twin saw them on the latest parts, for the
    optimizer's comparison; empty when the twin has not seen any."""
    live: dict[str, float] = {}
    for station in twin.view().stations:
        for name, value in station.process.items():
            key = f"{station.id}.{name}"
            if key in keys and math.isfinite(value):
                live[key] = value
    return live


def _no_setpoints(config: LineConfig) -> None:
    """409 for a line learnt without a file that has no setpoint to choose: the
    contract carries setpoints' values, not their ranges or what they do."""
    from models.optimizer.space import ranged_setpoints

    if not ranged_setpoints(config):
        raise HTTPException(
            status_code=409,
            detail="this twin has no line file, and the optimizer chooses setpoints within "
            "their ranges, which the line's messages do not carry: give the twin a line "
            "file (factory-twin learn --from-history writes one to start from) to optimize",
        )


def _space(config: LineConfig | None, names: list[str] | None) -> DecisionSpace | None:
    """The decision space a request asks for on this line (None: the API runs no
    line, which the job refuses); 422 naming ``vars`` when it cannot be had."""
    if config is None:
        return None
    space, problem = _space_or_problem(config, names)
    if space is None:
        raise HTTPException(
            status_code=422,
            detail=[{"loc": ["body", "vars"], "msg": problem, "type": "value_error"}],
        )
    return space


def _space_or_problem(
    config: LineConfig, names: list[str] | None
) -> tuple[DecisionSpace | None, str | None]:
    from models.optimizer.space import decision_space, parse_vars

    try:
        chosen = parse_vars(names, config) if names is not None else None
        return decision_space(config, chosen), None
    except ValueError as exc:
        what = "" if names is not None else "this line's default decision space: "
        return None, f"{what}{exc}"


class SpaceSetpoint(BaseModel):
    key: str = Field(description="station.setpoint")
    min: float
    max: float
    default: float = Field(description="The line file's value: today's setpoint.")
    step: float = Field(description="The lattice step when it is named without one.")
    in_default_space: bool


class SpaceView(BaseModel):
    setpoints: list[SpaceSetpoint] = Field(description="Every setpoint with a range.")
    default: list[str] | None = Field(
        description="What POST /optimize searches without vars; null when the line "
        "needs vars (reason says why)."
    )
    size: int | None = Field(description="Lattice points of the default space.")
    reason: str | None = None


@router.get(
    "/optimize/space",
    response_model=SpaceView,
    summary="The setpoints the optimizer may choose on this line, and its default choice",
)
def space(line: LineDep) -> SpaceView:
    from models.optimizer.space import ranged_setpoints, round_step

    config = line.config
    if config is None:  # nothing to choose from; the reason says why
        why = (
            "no line file: the line's messages carry setpoints' values, not their ranges"
            if line.learner is not None and line.runtime is not None
            else "no line config: this API runs no line"
        )
        return SpaceView(setpoints=[], default=None, size=None, reason=why)
    default, reason = _space_or_problem(config, None)
    keys = default.keys if default is not None else ()
    stations = {station.id: station for station in config.stations}
    setpoints = []
    for station_id, name in ranged_setpoints(config):
        setpoint = getattr(stations[station_id].process, name)
        key = f"{station_id}.{name}"
        setpoints.append(
            SpaceSetpoint(
                key=key,
                min=setpoint.min,
                max=setpoint.max,
                default=setpoint.default,
                step=round_step(setpoint.min, setpoint.max),
                in_default_space=key in keys,
            )
        )
    return SpaceView(
        setpoints=setpoints,
        default=list(keys) if default is not None else None,
        size=default.size if default is not None else None,
        reason=reason,
    )


@router.post(
    "/optimize",
    status_code=202,
    response_model=JobView,
    summary="Run the yield optimizer as a background job",
    dependencies=[TokenDep],
    responses={**MUTATING_RESPONSES, **QUEUE_FULL},
)
async def optimize(
    line: LineDep, jobs: JobsDep, models_path: ModelsPathDep, body: OptimizeRequest
) -> JobView:
    argv = ["optimize", "--objective", body.objective, "--budget", str(body.budget)]
    argv += ["--hours", repr(body.hours), "--replications", str(body.replications)]
    argv += ["--seed", str(body.seed), "--confirm-replications", str(body.confirm_replications)]
    argv += ["--confirm-doublings", str(body.confirm_doublings)]
    for flag, value in (
        ("--max-defect-rate", body.max_defect_rate),
        ("--min-good-per-hour", body.min_good_per_hour),
        ("--max-energy-per-part", body.max_energy_per_part),
    ):
        if value is not None:
            argv += [flag, repr(value)]
    unfiled = line.config is None and line.learner is not None
    config: LineConfig | None = line.config
    if unfiled:  # the learnt line, once it is ready (409 saying what it lacks until then)
        model, reason, config = await working_line(line, body.model)
        _no_setpoints(config)
    space = _space(config if unfiled else line.config, body.vars)
    if body.vars is not None:
        argv += ["--vars", ",".join(body.vars)]
    live = _live_setpoints(line.twin, space.keys) if space is not None else {}
    if live:
        argv += ["--current", json.dumps(live)]
    if not unfiled:
        model, reason, config = "nominal", "this API runs no line", line.config
        if line.config is not None:
            model, reason, config = await choose_model(line, line.config, body.model)
    job = start_cli_job(jobs, line, models_path, "optimize", argv, line_config=config)
    job.request.update({"model": model, "model_reason": reason})
    return job.view()


@router.get(
    "/optimize/recommendation",
    response_model=Recommendation,
    summary="The latest optimizer recommendation",
    responses={404: {"description": "No optimizer run has finished yet"}},
)
def recommendation(line: LineDep, jobs: JobsDep) -> Recommendation:
    return _recommendation(_find(jobs, line, None))


@router.post(
    "/optimize/apply",
    response_model=ApplyResult,
    summary="Send a recommendation's setpoints to the line; returns each ack",
    dependencies=[TokenDep],
    responses={
        **MUTATING_RESPONSES,
        404: {"description": "No such optimize job, or none has finished"},
        409: {
            "description": "The job has not succeeded, found no feasible point, or found "
            "no significant gain"
        },
        503: {"description": "No line is connected to this API, or the broker is unreachable"},
    },
)
async def apply(line: LineDep, jobs: JobsDep, body: ApplyRequest | None = None) -> ApplyResult:
    body = body or ApplyRequest()
    chosen = _recommendation(_find(jobs, line, body.job_id))
    if not chosen.feasible:
        raise HTTPException(
            status_code=409, detail="not applying: no recommended point meets the constraints"
        )
    if chosen.verdict == "keep":
        raise HTTPException(
            status_code=409,
            detail="not applying: no significant gain over today's setpoints on fresh runs "
            "(keep them)",
        )
    return await run_in_threadpool(_apply, line, chosen, body.timeout_s)


def _apply(line: LineStack, chosen: Recommendation, timeout: float) -> ApplyResult:
    from models.optimizer.search import setpoint_commands
    from sensors.command_client import Command, send_commands
    from sensors.mqtt import MqttError

    stack = line.runtime
    if stack is None or stack.address is None:
        raise HTTPException(status_code=503, detail="no line is connected to this API")
    flat = {
        f"{station}.{name}": value
        for station, values in chosen.setpoints.items()
        for name, value in values.items()
    }
    if stack.config is None:
        raise HTTPException(status_code=409, detail="this twin has no line file to apply to")
    try:
        planned = setpoint_commands(stack.config, flat)
    except ValueError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    commands = [
        Command(item["station"], "set_setpoint", {"setpoint": item["name"], "value": item["value"]})
        for item in planned
    ]
    try:
        answers = send_commands(
            stack.address, stack.topics, commands, timeout=timeout, source="factory-twin-api"
        )
    except MqttError as exc:
        raise HTTPException(status_code=503, detail=str(exc)) from exc
    acks = []
    for item, command in zip(planned, commands, strict=True):
        answer = answers[command.command_id]
        ack = CommandAck.model_validate(answer) if answer is not None else None
        notice_setpoint(stack, item["station"], item["name"], item["value"], ack)
        acks.append(
            AppliedSetpoint(
                station=item["station"], setpoint=item["name"], value=item["value"], ack=ack
            )
        )
    accepted = all(entry.ack is not None and entry.ack.accepted for entry in acks)
    return ApplyResult(job_id=chosen.job_id, accepted=accepted, acks=acks)
