"""Background jobs: list them, follow one, read its result, cancel it.

Jobs are started by the resources they belong to (``POST /training``,
``POST /optimize``, ``POST /scenarios``), which answer 202 with the job. The
job's ``url`` tells how far it got; once it succeeded, ``result_url`` gives the
outcome. Reading needs no token; cancelling
(``POST /jobs/{id}/cancel``) does.
"""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel

from api.deps import JobsDep, LineStack
from api.jobs import FINISHED, Job, JobKind, JobManager, JobView
from api.security import MUTATING_RESPONSES, TokenDep
from twin.config.line import LineConfig

router = APIRouter(tags=["jobs"])

JobId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9a-f]+$")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such job"}}


def find_job(jobs: JobManager, job_id: str) -> Job:
    job = jobs.get(job_id)
    if job is None:
        raise HTTPException(status_code=404, detail=f"no job {job_id!r}")
    return job


class JobList(BaseModel):
    jobs: list[JobView]


class JobResult(BaseModel):
    id: str
    kind: JobKind
    result: dict[str, Any]


@router.get("/jobs", response_model=JobList, summary="Background jobs, newest first")
def list_jobs(jobs: JobsDep, kind: Annotated[JobKind | None, Query()] = None) -> JobList:
    return JobList(jobs=[job.view() for job in jobs.jobs(kind)])


@router.get("/jobs/{job_id}", response_model=JobView, summary="One job", responses=NOT_FOUND)
def get_job(jobs: JobsDep, job_id: JobId) -> JobView:
    return find_job(jobs, job_id).view()


@router.get(
    "/jobs/{job_id}/result",
    response_model=JobResult,
    summary="A finished job's outcome",
    responses={
        **NOT_FOUND,
        409: {"description": "The job has not succeeded (yet): its status says why"},
    },
)
def job_result(jobs: JobsDep, job_id: JobId) -> JobResult:
    job = find_job(jobs, job_id)
    if job.status != "succeeded" or job.result is None:
        detail = f"job {job_id} is {job.status}"
        if job.error:
            detail += f": {job.error}"
        raise HTTPException(status_code=409, detail=detail)
    return JobResult(id=job.id, kind=job.kind, result=job.result)


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=JobView,
    summary="Cancel a job (its process is stopped)",
    dependencies=[TokenDep],
    responses={**NOT_FOUND, **MUTATING_RESPONSES},
)
async def cancel_job(jobs: JobsDep, job_id: JobId) -> JobView:
    job = find_job(jobs, job_id)
    if job.status not in FINISHED:
        await jobs.cancel(job)
    return job.view()


# A queued job waits for the running one, which takes minutes: a client that
# retries sooner than this only adds load.
RETRY_AFTER_S = 30
QUEUE_FULL: dict[int | str, dict[str, Any]] = {
    429: {
        "description": "Too many jobs are waiting: try again when one has started",
        "headers": {
            "Retry-After": {
                "description": "Seconds to wait before asking again.",
                "schema": {"type": "integer"},
            }
        },
    },
    503: {"description": "This API runs no line, so it has no line config for the job"},
}


def new_job(
    jobs: JobManager,
    for_line: LineStack,
    kind: JobKind,
    argv: list[str] | None = None,
    *,
    config: bool = True,
) -> Job:
    """A job of ``for_line`` (recorded on it), not started yet. 503 when ``config``
    is needed and the line has none, 429 when the queue is full."""
    from api.jobs import JobQueueFull

    if config and for_line.config is None:
        raise HTTPException(status_code=503, detail="no line config: this API runs no line")
    try:
        job = jobs.new_job(kind, argv or [])
    except JobQueueFull as exc:
        raise HTTPException(
            status_code=429, detail=str(exc), headers={"Retry-After": str(RETRY_AFTER_S)}
        ) from exc
    job.request["line"] = for_line.id
    return job


def start_cli_job(
    jobs: JobManager,
    for_line: LineStack,
    models_path: str | FilePath | None,
    kind: JobKind,
    argv: list[str],
    *,
    config: bool = True,
    report: bool = True,
    files: dict[str, str] | None = None,
    line_config: LineConfig | None = None,
) -> Job:
    """Start ``factory-twin <argv>`` as a job, on ``for_line`` (``--config``, and
    the job is that line's) and, for jobs that write one, with its report in the
    job's directory. ``files`` maps a flag to the contents of the file it names,
    written into the job's directory; ``line_config`` runs the job on another
    line file than the line's (the learnt one). 429 when the queue is full."""
    from api.settings import registry_path

    job = new_job(jobs, for_line, kind, argv, config=config and line_config is None)
    line = line_config if line_config is not None else for_line.config
    if line is not None and config:
        path = job.directory / "line.json"
        path.write_text(line.model_dump_json(), "utf-8")
        job.argv += ["--config", str(path)]
    for index, (flag, contents) in enumerate((files or {}).items()):
        path = job.directory / f"input-{index}{flag.replace('-', '_')}.json"
        path.write_text(contents, "utf-8")
        job.argv += [flag, str(path)]
    if report:
        models = models_path or registry_path()
        job.argv += ["--report-dir", str(job.directory / "report"), "--models-path", str(models)]
    return jobs.start(job)
