"""The twin's first models: trained in the background when it starts without any.

``factory-twin up`` with an empty registry would show no defect risk until
someone ran ``factory-twin train``. So once the history the twin starts from is
in the store (``Stack.history_ready``), ``FirstTraining`` runs the training
workflow of ``factory-twin train`` (``api.training``) in a child process, as

    factory-twin train --source history --explore-hours auto --end-ms <history end> \
        --days <the history, at most about 50,000 parts> ...

would run it. It learns from the backfilled history and a designed experiment on the line's
nominal model (docs/models.md, "The first models"), holds every model to the
quality gate and registers it. The running twin's ``ScoringLoop`` watches the
registry and picks up whatever was activated within one scoring period.

**The line does not wait, and is not starved.** The child runs at a lower CPU
priority (``NICE`` steps) with one thread, so on a two-core machine the live
plant, the ingest and the API keep their share; a separate process also keeps
this one's interpreter lock free. Its progress (sent over a pipe, as for the
API's jobs) becomes the twin's "training models: <stage>"; when it ends the
twin says what came of it: live models, or why none went live.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from api.children import start_child
from twin.config.line import LineConfig

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

log = logging.getLogger(__name__)
NICE = 10
STOP_GRACE_S = 5.0
# The history read is bounded by parts, not days: a week of a bottling line is
# 800,000 parts, gigabytes of rows and many minutes of fitting.
MAX_HISTORY_PARTS = 50_000


def history_days(config: LineConfig, span_s: float) -> float:
    """Days of history to learn from: all of ``span_s``, but at most about
    ``MAX_HISTORY_PARTS`` parts at the line's capacity (its slowest station's
    machines over their ideal cycle time: an upper bound on its rate)."""
    per_day = 86_400.0 * min(
        station.machines / station.planned_runtime_per_unit_s() for station in config.stations
    )
    return min(span_s / 86_400.0, MAX_HISTORY_PARTS / per_day)


@dataclass(frozen=True)
class FirstTrainingResult:
    """How the first training ended: which models went live, or why none did."""

    ok: bool
    live: tuple[str, ...]  # "defect v1", ...
    message: str  # for the twin: what it came to

    @property
    def defect_live(self) -> bool:
        return any(name.startswith("defect v") for name in self.live)


def summarize(code: int, result: dict[str, Any] | None, log_tail: list[str]) -> FirstTrainingResult:
    """What the child's exit code and result say, in one sentence for the twin."""
    if code != 0 or result is None:
        errors = [line.split("error:", 1)[1].strip() for line in log_tail if "error:" in line]
        why = errors[-1] if errors else f"exit code {code}"
        return FirstTrainingResult(
            False, (), f"the first training failed ({why}): run factory-twin train"
        )
    registered = result.get("registered") or []
    live = tuple(f"{item['name']} v{item['version']}" for item in registered if item.get("active"))
    refused = [
        f"{item['name']} v{item['version']} {item['gate']['reason']}"
        for item in registered
        if not item.get("active") and not (item.get("gate") or {}).get("passed", True)
    ]
    if not refused:
        return FirstTrainingResult(True, live, "first models live: " + ", ".join(live))
    message = (
        "the first training's models did not all pass the quality gate: "
        + "; ".join(refused)
        + ". See GET /models; factory-twin train --force activates a model anyway"
    )
    return FirstTrainingResult(True, live, message)


class FirstTraining:
    """The training of ``factory-twin train`` on the twin's history, in a
    low-priority child process.

    ``on_progress(stage)`` is called with each stage the child reports,
    ``on_done(result)`` once when it ended (not when it was stopped)."""

    def __init__(
        self,
        config: LineConfig,
        *,
        history_path: str,
        end_ms: int,
        days: float,
        models_path: str,
        work_dir: Path,
        seed: int,
        on_progress: Callable[[str], None],
        on_done: Callable[[FirstTrainingResult], None],
    ) -> None:
        self.config = config
        self.history_path = history_path
        self.end_ms = end_ms
        self.days = days
        self.models_path = models_path
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        self.directory = work_dir / f"first-training-{stamp}"
        self.seed = seed
        self.on_progress = on_progress
        self.on_done = on_done
        self.process: BaseProcess | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.result: FirstTrainingResult | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        from api.training import TrainingRequest, train_in_child

        self.directory.mkdir(parents=True, exist_ok=True)
        request = TrainingRequest(
            config=self.config,
            report_dir=self.directory / "report",
            models_path=Path(self.models_path),
            source="history",
            history_path=self.history_path,
            end_ms=self.end_ms,
            days=self.days,
            explore_hours=None,  # auto
            seed=self.seed,
            threads=1,
        )
        process, connection = start_child(train_in_child, (request,), "first-training")
        self.process = process
        if process.pid is not None:  # started: it has one
            _lower_priority(process.pid)
        log.info(
            "training the first models in the background (pid %s, report in %s)",
            process.pid,
            self.directory,
        )
        self._thread = threading.Thread(
            target=self._follow, args=(process, connection), name="first-training"
        )
        self._thread.daemon = True
        self._thread.start()

    def _follow(self, process: BaseProcess, connection: Connection) -> None:
        tail: list[str] = []
        result: dict[str, Any] | None = None
        while True:
            try:
                message = connection.recv()
            except (EOFError, OSError):  # the child ended (or was stopped)
                break
            if message[0] == "stage":
                self.on_progress(str(message[1]))
            elif message[0] == "say":
                tail = [*tail[-19:], str(message[1])]
            elif message[0] == "error":
                tail = [*tail[-19:], f"error: {message[1]}"]
            elif message[0] == "result":
                result = message[1]
        connection.close()
        process.join()
        if self._stopping.is_set():
            return
        code = process.exitcode if process.exitcode is not None else -1
        self.result = summarize(code, result, tail)
        log.info("first training ended: %s", self.result.message)
        try:
            self.on_done(self.result)
        except Exception:  # reporting must not kill the thread silently
            log.exception("reporting the first training's outcome failed")

    def stop(self) -> None:
        """Stop the child (by its pid) if it still runs, and wait for the follower."""
        self._stopping.set()
        process = self.process
        if process is not None and process.is_alive():
            process.terminate()
            process.join(STOP_GRACE_S)
            if process.is_alive():
                process.kill()
                process.join(STOP_GRACE_S)
        if self._thread is not None:
            self._thread.join(STOP_GRACE_S)
            self._thread = None


def _lower_priority(pid: int) -> None:
    """``NICE`` steps below this process: the live line keeps its share of the CPU."""
    try:
        mine = os.getpriority(os.PRIO_PROCESS, 0)
        os.setpriority(os.PRIO_PROCESS, pid, min(19, mine + NICE))
    except (AttributeError, OSError):  # not on this platform, or not allowed
        log.debug("could not lower the first training's priority", exc_info=True)


__all__ = [
    "MAX_HISTORY_PARTS",
    "FirstTraining",
    "FirstTrainingResult",
    "history_days",
    "summarize",
]
