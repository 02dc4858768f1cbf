"""The sensor watch on the twin's live stream: it learns, then it watches.

``LiveSensorWatch.observe`` takes every message the twin's ingest accepted. Until
it has an expectation it gathers ``learn_hours`` of line time of the stream
(``models.anomaly.expected.CleanHistory``), fits the expectation in a thread of
its own (the ingest never waits for it), keeps it as JSON at ``path`` and from
then on judges every reading (``models.anomaly.watch.SensorWatch``). A twin
restarted with that file watches at once; a file of another line, or one it
cannot read, is set aside and learnt anew (said in the log).

What it learns from is taken as clean: a fault in those hours becomes part of
what is expected, which the trimmed fit bounds but cannot undo. Delete the file
to learn again, after a change of the line.

**In line-time order.** Telemetry and events travel different paths (QoS 0 and
QoS 1, one topic each), so a reading can arrive before the state change that came
before it on the line. Judged on arrival, a running station's reading meets the
idle expectation it left, and a line-wide change (the restart after a planned
stop) raises an alarm on every station at once. Given the twin's watermark
(``as_of``: the line time up to which every stream has arrived,
``twin.state.watermark``), the watch holds each message until the watermark passes
it and takes the held ones in line-time order, as the twin's figures are. A line
that sends no heartbeat is trusted to send in order, and nothing waits.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from models.anomaly.expected import CleanHistory, LineExpectation, fit_expectations
from models.anomaly.trace import TracePoint
from models.anomaly.watch import SensorAlarm, SensorWatch, WatchSettings

log = logging.getLogger(__name__)

# What one station keeps while learning: a line that changes state every second
# stops gathering after its first hours, and learns from those.
MAX_RECORDS = 150_000
# The first readings of each sensor anchor its response and are not fitted.
WARMUP_S = 1800.0
FORMAT = 1
# Messages held for the watermark at most: past this (a stream that never
# completes) the oldest are taken beyond it, counted in ``held_forced``.
MAX_HELD = 100_000

WatchState = Literal["learning", "fitting", "watching", "failed"]


@dataclass(frozen=True)
class WatchStatus:
    state: WatchState
    learn_hours: float
    learned_hours: float
    sensors: int
    skipped: int
    held: int = 0
    held_forced: int = 0
    renewals: dict[str, float] = field(default_factory=dict)
    wear_on_plan: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True, slots=True)
class _Setpoint:
    """A setpoint the line acknowledged, held in its line-time place."""

    station: str
    name: str
    value: float
    at_s: float


class LiveSensorWatch:
    """One line's sensor watch, fed by the ingest's thread, read by the API's."""

    def __init__(
        self,
        line_id: str,
        path: Path | None,
        *,
        learn_hours: float = 24.0,
        settings: WatchSettings | None = None,
        max_records: int = MAX_RECORDS,
        as_of: Callable[[], float | None] | None = None,
        max_held: int = MAX_HELD,
    ) -> None:
        """``as_of``: the twin's watermark (None until it has one); without it,
        messages are taken as they arrive."""
        if not learn_hours > 0:
            raise ValueError(f"learn_hours must be > 0 (got {learn_hours!r})")
        self.line_id = line_id
        self.path = path
        self.learn_hours = learn_hours
        self.settings = settings or WatchSettings()
        self._lock = threading.Lock()
        self._history: CleanHistory | None = CleanHistory(max_records)
        self._watch: SensorWatch | None = None
        self._state: WatchState = "learning"
        self._error: str | None = None
        self._fitter: threading.Thread | None = None
        self._as_of = as_of
        self._max_held = max_held
        # (line time, arrival, station, message or setpoint) beyond the watermark.
        self._held: list[tuple[float, int, str | None, BaseModel | _Setpoint]] = []
        self._arrivals = itertools.count()
        self._mark = -math.inf
        self.held_forced = 0
        kept = self._load()
        if kept is not None:
            self._start_watching(kept)

    # -- the file ----------------------------------------------------------------------
    def _load(self) -> LineExpectation | None:
        if self.path is None or not self.path.exists():
            return None
        try:
            data = json.loads(self.path.read_text("utf-8"))
            if data.get("format") != FORMAT or data.get("line") != self.line_id:
                raise ValueError(
                    f"it is of line {data.get('line')!r}, format {data.get('format')!r}"
                )
            return LineExpectation.from_json(data["expectation"])
        except Exception as error:  # a file it cannot use is set aside, never fatal
            aside = self.path.with_suffix(".unusable.json")
            log.warning(
                "sensor watch: %s set aside as %s (%s); learning anew", self.path, aside, error
            )
            self.path.replace(aside)
            return None

    def _save(self, expectation: LineExpectation) -> None:
        if self.path is None:
            return
        data = {"format": FORMAT, "line": self.line_id, "expectation": expectation.to_json()}
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps(data), "utf-8")
        partial.replace(self.path)

    # -- input -------------------------------------------------------------------------
    def observe(self, station: str | None, message: BaseModel) -> list[SensorAlarm]:
        """One accepted message; the alarms it raised or cleared (of it, or of the
        held messages the watermark passed meanwhile)."""
        at = getattr(message, "sim_time_s", None)
        with self._lock:
            if station is None or not isinstance(at, float | int):
                # Not judged (a heartbeat): it may move the watermark on.
                return self._release() if self._as_of is not None else self._take(station, message)
            return self._hold(float(at), station, message)

    def notice_setpoint(self, station: str, name: str, value: float, at_s: float) -> None:
        """A setpoint the line acknowledged: in force from ``at_s``, taken in its
        place among the held messages."""
        with self._lock:
            self._hold(at_s, station, _Setpoint(station, name, value, at_s))

    def _hold(self, at: float, station: str, item: BaseModel | _Setpoint) -> list[SensorAlarm]:
        """Take ``item`` now, without a watermark; else hold it and take what the
        watermark passed (the lock held)."""
        if self._as_of is None:
            return self._take_item(station, item)
        heapq.heappush(self._held, (at, next(self._arrivals), station, item))
        return self._release()

    def _release(self) -> list[SensorAlarm]:
        """Take, in line-time order, the held messages the watermark passed (the
        lock held)."""
        assert self._as_of is not None  # noqa: S101 - only called when holding
        mark = self._as_of()
        held = self._held
        changes: list[SensorAlarm] = []
        if mark is None:
            mark = -math.inf
        elif mark < self._mark:
            # The line started over (a new birth, its clock from zero): the times
            # of two runs do not compare, so what is held goes as it came.
            for _, _, station, item in sorted(held, key=lambda entry: entry[1]):
                changes.extend(self._take_item(station, item))
            held.clear()
        self._mark = mark
        while held and (held[0][0] <= mark or len(held) > self._max_held):
            if held[0][0] > mark:
                self.held_forced += 1  # too many wait: the oldest goes beyond the watermark
            _, _, station, item = heapq.heappop(held)
            changes.extend(self._take_item(station, item))
        return changes

    def _take_item(self, station: str | None, item: BaseModel | _Setpoint) -> list[SensorAlarm]:
        if isinstance(item, _Setpoint):
            self._take_setpoint(item)
            return []
        return self._take(station, item)

    def _take_setpoint(self, item: _Setpoint) -> None:
        if self._watch is not None:
            self._watch.notice_setpoint(item.station, item.name, item.value, item.at_s)

    def _take(self, station: str | None, message: BaseModel) -> list[SensorAlarm]:
        """One message, in its line-time place (the lock held)."""
        watch = self._watch
        if watch is not None:
            return watch.feed(station, message)
        history = self._history
        if history is None:  # fitting, or failed
            return []
        history.take(station, message)
        if history.hours >= self.learn_hours or (
            history.full and history.hours >= min(self.learn_hours, 4.0)
        ):
            self._history = None
            self._state = "fitting"
            self._fitter = threading.Thread(
                target=self._fit, args=(history,), name="sensor-watch-fit", daemon=True
            )
            self._fitter.start()
        return []

    def _fit(self, history: CleanHistory) -> None:
        try:
            expectation = fit_expectations(history, warmup_s=WARMUP_S)
            if not expectation.sensors:
                raise ValueError("no sensor had enough readings to learn from")
            self._save(expectation)
        except Exception as error:
            log.exception("sensor watch of %s: learning failed", self.line_id)
            with self._lock:
                self._state = "failed"
                self._error = str(error)
            return
        log.info(
            "sensor watch of %s: learnt %d sensors from %.1f line hours; watching",
            self.line_id,
            len(expectation.sensors),
            history.hours,
        )
        with self._lock:
            self._start_watching(expectation)

    def _start_watching(self, expectation: LineExpectation) -> None:
        self._watch = SensorWatch(expectation, self.settings, trace=True)
        self._history = None
        self._state = "watching"

    def wait_fitted(self, timeout: float | None = None) -> bool:
        """Wait for a fit under way (tests); True once watching."""
        fitter = self._fitter
        if fitter is not None:
            fitter.join(timeout)
        return self._state == "watching"

    # -- reading -------------------------------------------------------------------------
    def active(self) -> list[SensorAlarm]:
        with self._lock:
            return self._watch.active() if self._watch is not None else []

    def trace(
        self, station: str, sensor: str, from_s: float = -math.inf, to_s: float = math.inf
    ) -> list[TracePoint] | None:
        """A sensor's readings and expectations since the watch began to judge
        (``models.anomaly.trace``); None when it does not watch that sensor."""
        with self._lock:
            watch = self._watch
            return watch.trace(station, sensor, from_s, to_s) if watch is not None else None

    def latest(self, station: str, sensor: str) -> SensorAlarm | None:
        """The sensor's latest alarm, cleared or not."""
        with self._lock:
            watch = self._watch
            if watch is None:
                return None
            for alarm in reversed(watch.history):
                if alarm.key == (station, sensor):
                    return alarm
            return None

    @property
    def watching(self) -> bool:
        return self._state == "watching"

    def status(self) -> WatchStatus:
        with self._lock:
            watch = self._watch
            history = self._history
            learned = self.learn_hours if watch is not None else (history.hours if history else 0.0)
            return WatchStatus(
                state=self._state,
                learn_hours=self.learn_hours,
                learned_hours=round(min(learned, self.learn_hours), 3),
                sensors=len(watch.expectation.sensors) if watch is not None else 0,
                skipped=watch.skipped if watch is not None else 0,
                held=len(self._held),
                held_forced=self.held_forced,
                renewals=dict(watch.expectation.renewals) if watch is not None else {},
                wear_on_plan=sorted(a.station for a in watch.active() if a.on_plan)
                if watch is not None
                else [],
                error=self._error,
            )
