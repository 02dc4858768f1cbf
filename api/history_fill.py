"""Imported history in the background: the line goes live while the backfill runs.

``factory-twin up`` answers at once and shows the live line; the simulated
history (``sensors.backfill``) is written beside it into the same store and is
announced when it is ready (``HistoryFill.on_ready``: the first model training
starts from there).

What is filled, and why it never overlaps live data:

- **The tail.** History ends where stored history ends, or is empty; the gap from
  there (at most ``span_s`` back) up to the *live start* is filled. The live
  start is taken before the live line publishes its first message, and the
  line is held until the clock has passed it, so every backfilled point is at
  or before it and every live point after it.
- **What an interrupted backfill left.** A backfill is noted in the store when
  it begins and struck off when it ends (``SqliteStore.begin_backfill``). If the
  process stopped in between, the next start finds the note, looks up the
  newest backfilled point inside it, and fills from there to the note's end:
  that span held no live data then (the live line of that run started at its
  end) and holds none now.
- A gap shorter than ``BACKFILL_MIN_S`` is not worth a simulation. Gaps are
  filled oldest first, each a fresh run of the line (its own warm-up), as a
  restart of the real line would be.

Several lines (a site) each have a fill; they take turns (one backfill at a
time in a process), so that each runs at full speed on the machine's cores.

The live line comes first: while ``hold()`` says the live pipeline is behind
(the stack asks its publisher's outbox), the backfill waits.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

from sensors.backfill import BackfillCancelled, BackfillResult, backfill
from sensors.topics import LineTopics
from twin.config.line import LineConfig
from twin.history.points import HistoryWriter
from twin.history.store import SqliteStore
from twin.workers import Worker

log = logging.getLogger(__name__)
# A gap in stored history shorter than this is not worth a backfill.
BACKFILL_MIN_S = 60.0
# One backfill at a time in a process: each already keeps two cores busy.
_ONE_AT_A_TIME = threading.Lock()
# How often a waiting fill looks at its stop event.
POLL_S = 0.2

BackfillState = Literal["off", "backfilling", "done", "failed", "stopped"]


@dataclass(frozen=True)
class Gap:
    """A span of history to fill, in Unix ms; ``noted`` is the store's note it resumes."""

    start_ms: int
    end_ms: int
    noted: tuple[int, int] | None = None

    @property
    def span_s(self) -> float:
        return (self.end_ms - self.start_ms) / 1000.0


@dataclass(frozen=True)
class BackfillStatus:
    """Where the backfill is; ``fraction`` is of the simulated time of every gap."""

    state: BackfillState
    simulated_s_done: float = 0.0
    simulated_s_total: float = 0.0
    wall_s: float | None = None
    error: str | None = None
    results: tuple[BackfillResult, ...] = field(default=())

    @property
    def fraction(self) -> float:
        if self.simulated_s_total <= 0:
            return 1.0 if self.state == "done" else 0.0
        return min(1.0, self.simulated_s_done / self.simulated_s_total)

    @property
    def ready(self) -> bool:
        """History will not grow by backfill any more (done, failed or off)."""
        return self.state in ("done", "failed", "off")


@dataclass(frozen=True)
class BackfillPlan:
    """The spans to fill, oldest first, and the store's notes of unfinished
    backfills that leave nothing worth filling (forgotten when the fill starts)."""

    gaps: tuple[Gap, ...] = ()
    stale_notes: tuple[tuple[int, int], ...] = ()


def plan_backfill(
    store: SqliteStore, *, live_start_ms: int, span_s: float, min_s: float = BACKFILL_MIN_S
) -> BackfillPlan:
    """What to fill within ``span_s`` before the live start; reads the store only."""
    if span_s <= 0:
        return BackfillPlan()
    window_start = live_start_ms - int(span_s * 1000)
    gaps: list[Gap] = []
    stale: list[tuple[int, int]] = []
    for noted_start, noted_end in store.unfinished_backfills():
        newest = store.newest_ms(noted_start, noted_end, {"origin": "backfill"})
        start = max(window_start, noted_start if newest is None else newest + 1)
        end = min(noted_end, live_start_ms)
        if (end - start) / 1000.0 >= min_s:
            gaps.append(Gap(start, end, noted=(noted_start, noted_end)))
        else:
            stale.append((noted_start, noted_end))
    stored = store.time_range()
    tail_start = window_start if stored is None else max(window_start, stored[1] + 1)
    if (live_start_ms - tail_start) / 1000.0 >= min_s:
        gaps.append(Gap(tail_start, live_start_ms))
    return BackfillPlan(tuple(sorted(gaps, key=lambda gap: gap.start_ms)), tuple(stale))


ReadyHook = Callable[[BackfillStatus], None]


class HistoryFill:
    """Fills the gaps in one line's history on a thread of its own."""

    def __init__(
        self,
        config: LineConfig | None,
        store: SqliteStore,
        writer: HistoryWriter,
        topics: LineTopics,
        *,
        span_s: float,
        seed: int,
        live_start_ms: int,
        hold: Callable[[], bool] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.writer = writer
        self.topics = topics
        self.seed = seed
        self.hold = hold
        self.plan = plan_backfill(store, live_start_ms=live_start_ms, span_s=span_s)
        self.gaps = self.plan.gaps
        total = sum(gap.span_s for gap in self.gaps)
        if span_s <= 0:
            state: BackfillState = "off"
        else:
            state = "backfilling" if self.gaps else "done"
        self._status = BackfillStatus(state, 0.0, total)
        self._lock = threading.Lock()
        self._hooks: list[ReadyHook] = []
        self._worker = Worker("backfill", lambda _stop: self._run())
        self._stop = self._worker.stopping
        self._go: threading.Event | None = None
        self.ready = threading.Event()
        if not self.gaps:
            log.info("history is up to date: no backfill needed")

    def status(self) -> BackfillStatus:
        with self._lock:
            return self._status

    def on_ready(self, hook: ReadyHook) -> None:
        """Call ``hook`` with the final status once history is ready: every gap
        written and on disk, or the backfill failed (its error in the status), or
        it was off or not needed. Called at once (in this thread) if that is so
        already, else from the backfill's thread; never when the stack stops
        first. A hook's error is logged, never raised."""
        with self._lock:
            if not self._status.ready:
                self._hooks.append(hook)
                return
            status = self._status
        self._call(hook, status)

    def start(self, go: threading.Event | None = None) -> None:
        """Start filling on a thread of its own; with ``go``, once it is set (the
        API is up: the backfill's processes would slow its start)."""
        self._go = go
        for note in self.plan.stale_notes:
            self.store.end_backfill(*note)
        if not self.gaps:
            self._finish(self.status())
            return
        self._worker.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop a running backfill (its children end quietly) and wait for it."""
        self._worker.stop(timeout)

    # -- the backfill's thread ----------------------------------------------------------
    def _update(self, **changes: object) -> BackfillStatus:
        with self._lock:
            self._status = replace(self._status, **changes)  # type: ignore[arg-type]
            return self._status

    def _run(self) -> None:
        began = time.monotonic()
        try:
            while self._go is not None and not self._go.wait(POLL_S):
                if self._stop.is_set():
                    raise BackfillCancelled("stopped before it began")
            # Another line of the site may be backfilling: wait for its turn.
            while not _ONE_AT_A_TIME.acquire(timeout=POLL_S):
                if self._stop.is_set():
                    raise BackfillCancelled("stopped before its turn")
            try:
                results = self._fill(began)
            finally:
                _ONE_AT_A_TIME.release()
        except BackfillCancelled:
            self._update(state="stopped", wall_s=time.monotonic() - began)
            log.info("backfill stopped; the next start fills the rest")
            return
        except Exception as error:  # the live line runs on without imported history
            log.exception("backfill failed")
            status = self._update(state="failed", wall_s=time.monotonic() - began, error=str(error))
            self._finish(status)
            return
        status = self._update(state="done", wall_s=time.monotonic() - began, results=results)
        self._finish(status)

    def _fill(self, began: float) -> tuple[BackfillResult, ...]:
        results: list[BackfillResult] = []
        done_before = 0.0
        total = self.status().simulated_s_total
        log.info(
            "backfilling %.1f days of history in the background (%d gap%s)",
            total / 86400,
            len(self.gaps),
            "" if len(self.gaps) == 1 else "s",
        )
        for index, gap in enumerate(self.gaps):

            def progress(
                fraction: float,
                gap: Gap = gap,
                base: float = done_before,
                reported: list[float] = [0.0],  # noqa: B006 - one list per gap, on purpose
            ) -> None:
                self._update(
                    simulated_s_done=base + fraction * gap.span_s,
                    wall_s=time.monotonic() - began,
                )
                if fraction - reported[0] >= 0.1 or fraction >= 1.0:
                    reported[0] = fraction
                    log.info("backfill %3.0f%%", self.status().fraction * 100)

            self.store.begin_backfill(gap.start_ms, gap.end_ms)
            if gap.noted is not None:
                self.store.end_backfill(*gap.noted)  # the new note covers what is left
            if self.config is None:
                raise ValueError("a backfill simulates the line file, and this line has none")
            result = backfill(
                self.config,
                self.writer,
                self.topics,
                end_ms=gap.end_ms,
                span_s=gap.span_s,
                # A different week for each gap, the same for the same seed.
                seed=self.seed + index,
                progress=progress,
                stop=self._stop,
                hold=self.hold,
            )
            # Ready means on disk: the note goes only once every point is committed.
            while not self.writer.flush(1.0):
                if self._stop.is_set():
                    raise BackfillCancelled("stopped while the store was writing")
            self.store.end_backfill(gap.start_ms, gap.end_ms)
            done_before += gap.span_s
            self._update(simulated_s_done=done_before)
            results.append(result)
            log.info(
                "backfill done: %.1f simulated days, %d messages, %d points in %.1f s",
                result.simulated_s / 86400,
                result.messages,
                result.points,
                result.wall_s,
            )
        return tuple(results)

    def _finish(self, status: BackfillStatus) -> None:
        with self._lock:
            hooks, self._hooks = self._hooks, []
        self.ready.set()
        for hook in hooks:
            self._call(hook, status)

    @staticmethod
    def _call(hook: ReadyHook, status: BackfillStatus) -> None:
        try:
            hook(status)
        except Exception:
            log.exception("a history-ready hook failed")
