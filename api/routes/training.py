"""Training and tuning as background jobs: ``POST /training`` and ``POST /tuning``.

Each runs the training workflow of ``factory-twin train`` (or ``tune``,
``api.training``) in a child process on the line this API serves
(``api.jobs``) and answers 202 with the job. The job registers
the new versions in the API's model registry, as the command does: each is
activated only if it passes the quality gate (or ``force``), and the result
names them with whether they went live, their gate (what failed), the test
metrics and the report's directory. The running twin's scorer loads newly
active versions within one scoring period. Needs the API token: training loads
the machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.bodies import Whole
from api.deps import JobsDep, LineDep, LineStack, ModelsPathDep
from api.jobs import Job, JobKind, JobManager, JobView
from api.routes.jobs import QUEUE_FULL, new_job
from api.security import MUTATING_RESPONSES, TokenDep
from api.training import DRIFT_DETECTOR_GONE

router = APIRouter(
    tags=["models"],
    dependencies=[TokenDep],
    responses={
        **MUTATING_RESPONSES,
        **QUEUE_FULL,
    },
)

MAX_SIMULATION_HOURS = 2000.0


class TrainRequest(BaseModel):
    """What ``factory-twin train`` takes (docs/models.md), bounded for the API."""

    model_config = ConfigDict(extra="forbid", strict=True)

    source: Literal["simulation", "history"] = Field(
        default="simulation",
        description="simulation: a fresh simulated history; history: the line's stored history.",
    )
    hours: float = Field(
        default=480.0, gt=0, le=MAX_SIMULATION_HOURS, description="simulation: simulated hours."
    )
    days: float = Field(default=7.0, gt=0, le=365, description="history: the latest days.")
    seed: Whole = Field(default=1, ge=0, le=2**31 - 1)
    test_fraction: float = Field(default=0.3, gt=0, lt=1)
    stations: bool = Field(default=True, description="Also fit the station model.")
    explore_hours: float = Field(
        default=0.0,
        ge=0,
        le=MAX_SIMULATION_HOURS,
        description="history: also learn from this many simulated hours of the line's nominal "
        "model with explored setpoints (docs/models.md); 0: history only.",
    )
    activate: bool = Field(
        default=True,
        description="Make the new versions active, each if it passes the quality gate.",
    )
    force: bool = Field(
        default=False, description="Activate the new versions even below the quality floor."
    )

    @model_validator(mode="before")
    @classmethod
    def _no_drift_detector(cls, data: Any) -> Any:
        """Earlier versions took ``drift`` and ``drift_hours`` for the drift detector:
        ``"drift": false`` is what happens now anyway; asking for it is refused, saying why."""
        if not isinstance(data, dict) or ("drift" not in data and "drift_hours" not in data):
            return data
        if data.get("drift") is not False or "drift_hours" in data:
            raise ValueError(DRIFT_DETECTOR_GONE)
        return {key: value for key, value in data.items() if key != "drift"}


class TuneRequest(TrainRequest):
    search: Literal["halving", "random"] = "halving"
    candidates: Whole = Field(default=24, ge=1, le=200)
    cv_splits: Whole = Field(default=4, ge=2, le=10)


def _start(
    jobs: JobManager,
    line: LineStack,
    models_path: str | Path | None,
    kind: JobKind,
    body: TrainRequest,
) -> Job:
    """A job that runs the training workflow (``api.training``) in a child process,
    on ``line`` (the first: training is not per line), registering in the API's
    registry."""
    from api.settings import registry_path
    from api.training import TrainingRequest, Tuning, train_in_child

    history = _history_path(line) if body.source == "history" else None
    job = new_job(jobs, line, kind)
    config = line.config
    assert config is not None  # noqa: S101 - new_job refuses a line without one
    models = models_path or registry_path()
    tuning = None
    if isinstance(body, TuneRequest):
        tuning = Tuning(body.search, body.candidates, body.cv_splits)
    job.target = train_in_child
    job.target_args = (
        TrainingRequest(
            config=config,
            report_dir=job.directory / "report",
            models_path=Path(models),
            source=body.source,
            hours=body.hours,
            history_path=history,
            days=body.days,
            explore_hours=body.explore_hours,
            seed=body.seed,
            test_fraction=body.test_fraction,
            stations=body.stations,
            activate=body.activate,
            force=body.force,
            tuning=tuning,
        ),
    )
    return jobs.start(job)


def _history_path(line: LineStack) -> str:
    """The embedded store the API's stack writes to (SQLite: a second reader is fine)."""
    path = getattr(line.history, "path", None)
    if path is None:
        raise HTTPException(status_code=503, detail="this API keeps no history to train on")
    return str(path)


@router.post(
    "/training",
    status_code=202,
    response_model=JobView,
    summary="Train the defect and station models as a background job",
)
async def train(
    line: LineDep, jobs: JobsDep, models_path: ModelsPathDep, body: TrainRequest
) -> JobView:
    return _start(jobs, line, models_path, "train", body).view()


@router.post(
    "/tuning",
    status_code=202,
    response_model=JobView,
    summary="Tune the defect model with time-aware CV, then train, as a background job",
)
async def tune(
    line: LineDep, jobs: JobsDep, models_path: ModelsPathDep, body: TuneRequest
) -> JobView:
    return _start(jobs, line, models_path, "tune", body).view()
