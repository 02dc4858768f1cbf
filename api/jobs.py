"""Background jobs: training, tuning, optimization and what-if runs.

Each job is a child process, so the API's event loop and its interpreter lock
stay free however heavy the job is, and a crashing job cannot take the API with
it. A training job runs the training workflow itself (``api.training``) in a
fresh interpreter and sends its progress, log and result over a pipe; the
optimizer and what-if jobs run the command a user would type
(``factory-twin optimize ...``), which reports progress as JSON lines on stderr
(``FACTORY_TWIN_PROGRESS=json``) and its outcome with ``--result-json``.

At most ``max_running`` jobs run at once (one by default: these machines have
two cores and the API needs one); up to ``max_queued`` more wait their turn and
a request beyond that is refused, so a burst of requests cannot take the
machine down. Each job has a time limit. Jobs live in memory: a restart of the
API forgets them, but their reports stay in the job directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import sys
import tempfile
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from api.children import BACKGROUND_NICE, child_environment, start_child

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

log = logging.getLogger(__name__)

JobKind = Literal["train", "tune", "optimize", "scenario", "forecast"]
JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
LOG_LINES = 40
STOP_GRACE_S = 5.0


class JobQueueFull(RuntimeError):
    """More jobs are waiting than the manager takes."""


class JobView(BaseModel):
    """A background job: what it is, how far it got, and where its result is."""

    id: str
    kind: JobKind
    status: JobStatus
    stage: str | None = Field(default=None, description="What the job is doing now.")
    stages: list[str] = Field(
        default_factory=list,
        description="Every stage the job has entered, in order (a fast stage is listed "
        "even when no poll saw it as the current one).",
    )
    progress: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="How far the current stage is (0 to 1); null when it cannot tell.",
    )
    message: str | None = Field(default=None, description="The job's latest log line.")
    error: str | None = Field(default=None, description="Why it failed, when it did.")
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    url: str
    result_url: str | None = Field(default=None, description="Set once the job succeeded.")


class ChildProcess:
    """A function's child process (``api.children.start_child``) as the manager
    follows a command's: its exit code, stopped the same way."""

    def __init__(self, process: BaseProcess) -> None:
        self._process = process

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def terminate(self) -> None:
        self._process.terminate()

    def kill(self) -> None:
        self._process.kill()

    async def wait(self) -> int | None:
        await asyncio.to_thread(self._process.join)
        return self._process.exitcode


@dataclass
class Job:
    id: str
    kind: JobKind
    argv: list[str]
    directory: Path
    # A function run in a child instead of a command: ``target(*target_args,
    # connection)`` sends ("stage", name, done, total), ("say", line), and last
    # ("result", JSON values) or ("error", why) (api.training.train_in_child).
    target: Callable[..., None] | None = None
    target_args: tuple[Any, ...] = ()
    status: JobStatus = "queued"
    stage: str | None = None
    stages: list[str] = field(default_factory=list)
    progress: float | None = None
    error: str | None = None
    result: dict[str, Any] | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started_at: datetime | None = None
    finished_at: datetime | None = None
    log: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    process: asyncio.subprocess.Process | ChildProcess | None = None
    task: asyncio.Task[None] | None = None
    cancel_requested: bool = False
    # Turns the child's result JSON into the job's result (e.g. adds what the
    # API knew when it started the job).
    finish: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    # What the resource that started the job knew of it (a what-if's horizon and
    # fork time), for listing jobs before their result exists.
    request: dict[str, Any] = field(default_factory=dict)

    @property
    def result_path(self) -> Path:
        return self.directory / "result.json"

    def view(self) -> JobView:
        return JobView(
            id=self.id,
            kind=self.kind,
            status=self.status,
            stage=self.stage,
            stages=list(self.stages),
            progress=self.progress,
            message=self.log[-1] if self.log else None,
            error=self.error,
            created_at=self.created_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            url=f"/jobs/{self.id}",
            result_url=f"/jobs/{self.id}/result" if self.status == "succeeded" else None,
        )


class JobManager:
    """Runs jobs as child processes, a bounded number at a time."""

    def __init__(
        self,
        directory: str | Path | None = None,
        *,
        max_running: int = 1,
        max_queued: int = 8,
        keep: int = 100,
        timeout_s: float = 3600.0,
    ) -> None:
        if max_running < 1:
            raise ValueError(f"max_running must be >= 1 (got {max_running})")
        self._own_directory = directory is None
        self._directory = Path(directory) if directory is not None else None
        self.max_running = max_running
        self.max_queued = max_queued
        self.keep = keep
        self.timeout_s = timeout_s
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._slots: asyncio.Semaphore | None = None
        self.submitted = 0

    @property
    def directory(self) -> Path:
        """Where each job gets its directory; a temporary one (made on first use,
        removed by ``close``) unless one was given."""
        if self._directory is None:
            self._directory = Path(tempfile.mkdtemp(prefix="factory-twin-jobs-"))
        return self._directory

    # -- queries ------------------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def jobs(self, kind: str | None = None) -> list[Job]:
        """Newest first."""
        return [job for job in reversed(self._jobs.values()) if kind in (None, job.kind)]

    def latest(self, kind: str, status: str = "succeeded") -> Job | None:
        return next((job for job in self.jobs(kind) if job.status == status), None)

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(("queued", "running", "succeeded", "failed", "cancelled"), 0)
        for job in self._jobs.values():
            counts[job.status] += 1
        return counts

    # -- submitting ---------------------------------------------------------------------------
    def new_job(self, kind: JobKind, argv: Sequence[str] = ()) -> Job:
        """A job with its own directory, not yet started: the caller may put its
        inputs there and complete ``argv`` before ``start``."""
        waiting = sum(1 for job in self._jobs.values() if job.status == "queued")
        if waiting >= self.max_queued:
            raise JobQueueFull(
                f"{waiting} jobs are already waiting (the limit): try again when one has started"
            )
        job_id = uuid.uuid4().hex[:12]
        directory = self.directory / job_id
        directory.mkdir(parents=True)
        return Job(job_id, kind, list(argv), directory)

    def start(self, job: Job) -> Job:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_running)
        self._jobs[job.id] = job
        self.submitted += 1
        self._forget_old()
        job.task = asyncio.get_running_loop().create_task(self._run(job, self._slots))
        return job

    def _forget_old(self) -> None:
        finished = [job for job in self._jobs.values() if job.status in FINISHED]
        for job in finished[: max(0, len(self._jobs) - self.keep)]:
            del self._jobs[job.id]

    def forget(self, job: Job) -> None:
        """Drop a finished job and its directory (a shadow forecast, once its result
        is taken: they come every hour and would push the users' jobs out)."""
        if job.status not in FINISHED:
            raise ValueError(f"job {job.id} is {job.status}: only a finished job is forgotten")
        self._jobs.pop(job.id, None)
        shutil.rmtree(job.directory, ignore_errors=True)

    async def cancel(self, job: Job) -> None:
        if job.status in FINISHED:
            return
        job.cancel_requested = True
        if job.process is not None:
            await _stop(job.process)
        elif job.task is not None:
            job.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job.task

    async def close(self) -> None:
        """Stop every job (children included) and remove a temporary directory."""
        for job in list(self._jobs.values()):
            job.cancel_requested = True
            if job.process is not None and job.status == "running":
                await _stop(job.process)
            if job.task is not None and not job.task.done():
                job.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await job.task
        if self._own_directory and self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None

    # -- running ------------------------------------------------------------------------------
    async def _run(self, job: Job, slots: asyncio.Semaphore) -> None:
        try:
            async with slots:
                if job.cancel_requested:
                    self._end(job, "cancelled", "cancelled before it started")
                    return
                await self._execute(job)
        except asyncio.CancelledError:
            self._end(job, "cancelled", "cancelled")
            raise
        except Exception as exc:  # a job's failure must never take the API down
            log.exception("job %s failed", job.id)
            self._end(job, "failed", f"{type(exc).__name__}: {exc}")

    async def _execute(self, job: Job) -> None:
        job.status = "running"
        job.started_at = datetime.now(UTC)
        if job.target is not None:
            await self._execute_function(job, job.target)
            return
        env = child_environment(FACTORY_TWIN_PROGRESS="json", PYTHONUNBUFFERED="1")
        job.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "api.cli",
            *job.argv,
            "--result-json",
            str(job.result_path),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=str(job.directory),
        )
        streams = [job.process.stdout, job.process.stderr]
        readers = asyncio.gather(*(self._read(job, s) for s in streams if s is not None))
        try:
            code = await asyncio.wait_for(job.process.wait(), timeout=self.timeout_s)
        except TimeoutError:
            await _stop(job.process)
            await readers
            self._end(job, "failed", f"timed out after {self.timeout_s:g} s")
            return
        except asyncio.CancelledError:
            await _stop(job.process)
            raise
        await readers
        if job.cancel_requested:
            self._end(job, "cancelled", "cancelled")
        elif code != 0:
            self._end(job, "failed", self._failure(job, code))
        else:
            self._succeed(job)

    async def _execute_function(self, job: Job, target: Callable[..., None]) -> None:
        # A forecast nobody asked for runs below the live line (BACKGROUND_NICE).
        nice = BACKGROUND_NICE if job.kind == "forecast" else 0
        process, connection = start_child(target, job.target_args, f"job-{job.id}", nice=nice)
        child = job.process = ChildProcess(process)
        outcome: dict[str, Any] = {}
        try:
            await asyncio.wait_for(self._receive(job, connection, outcome), self.timeout_s)
        except TimeoutError:
            await _stop(child)
            self._end(job, "failed", f"timed out after {self.timeout_s:g} s")
            return
        except asyncio.CancelledError:
            await _stop(child)
            raise
        finally:
            connection.close()
        code = await child.wait()
        if job.cancel_requested:
            self._end(job, "cancelled", "cancelled")
        elif "error" in outcome:
            self._end(job, "failed", str(outcome["error"]))
        elif "result" not in outcome:
            self._end(job, "failed", self._failure(job, code if code is not None else -1))
        else:
            # As a command's: the result is a file in the job's directory.
            job.result_path.write_text(json.dumps(outcome["result"], default=str), "utf-8")
            self._succeed(job)

    @staticmethod
    async def _receive(job: Job, connection: Any, outcome: dict[str, Any]) -> None:
        """What the child sends, until it closes the pipe (it ended)."""
        while True:
            # Polled in a thread, a little at a time: the event loop stays free.
            if not await asyncio.to_thread(connection.poll, 0.5):
                continue
            try:
                message = connection.recv()
            except EOFError:
                return
            if message[0] == "stage":
                _progress_to(job, message[1], message[2], message[3])
            elif message[0] == "say":
                job.log.append(str(message[1]))
            else:
                outcome[message[0]] = message[1]

    async def _read(self, job: Job, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            text = line.decode("utf-8", "replace").rstrip()
            if not text:
                continue
            progress = _progress(text)
            if progress is None:
                job.log.append(text)
                continue
            _progress_to(job, progress.get("stage"), progress.get("done"), progress.get("total"))

    @staticmethod
    def _failure(job: Job, code: int) -> str:
        errors = [line for line in job.log if "error:" in line]
        if errors:
            return errors[-1].split("error:", 1)[1].strip()
        tail = " | ".join(list(job.log)[-3:])
        return f"exited with code {code}" + (f": {tail}" if tail else "")

    def _succeed(self, job: Job) -> None:
        try:
            result = json.loads(job.result_path.read_text("utf-8"))
            if job.finish is not None:
                result = job.finish(result)
        except (OSError, ValueError) as exc:
            self._end(job, "failed", f"the job finished without a readable result: {exc}")
            return
        job.result = result
        job.progress = 1.0
        self._end(job, "succeeded", None)

    @staticmethod
    def _end(job: Job, status: JobStatus, error: str | None) -> None:
        job.status = status
        job.error = error
        job.finished_at = datetime.now(UTC)
        job.process = None


def _progress_to(job: Job, stage: Any, done: Any, total: Any) -> None:
    """A child's word on its progress, into the job's stage, stages and progress."""
    job.stage = str(stage or job.stage)
    if job.stage and (not job.stages or job.stages[-1] != job.stage):
        job.stages.append(job.stage)
    if isinstance(total, int | float) and isinstance(done, int | float) and total > 0:
        job.progress = min(1.0, max(0.0, done / total))
    else:
        job.progress = None


def _progress(text: str) -> dict[str, Any] | None:
    if not text.startswith('{"progress"'):
        return None
    try:
        document = json.loads(text)
    except ValueError:
        return None
    progress = document.get("progress")
    return progress if isinstance(progress, dict) else None


async def _stop(process: asyncio.subprocess.Process | ChildProcess) -> None:
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        await asyncio.wait_for(process.wait(), timeout=STOP_GRACE_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


__all__ = ["ChildProcess", "Job", "JobKind", "JobManager", "JobQueueFull", "JobStatus", "JobView"]
