"""Each line's alarm book as the API keeps it: the ISA-18.2 lifecycle
(``twin.alarms.lifecycle``) fed by the alarm rules of ``api.routes.alarms``, its
record in the line's history file (``twin.alarms.log``), and who hears of a change.

The rules say which conditions hold now. ``LineAlarms.evaluate`` hands them to the
book every second (``api.app``'s periodic task) and before every read of the
alarms, so a condition that came and went between two looks is still raised and
cleared, and the list an operator sees is never older than the request. A
condition that no rule reports any more is cleared. The book's time is the line's
clock (the twin's newest ``sim_time_s``), the record's also the wall clock.

At start the book is rebuilt from the record (``AlarmBook.replay``), so
acknowledgements, shelves and what is out of service survive a restart of the
twin. A line served without a history file (an app made around a bare twin, in
tests) keeps its book in memory.

Listeners (the live stream) get every transition, on the thread that made it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.datastructures import State

from twin.alarms.lifecycle import AlarmBook, AlarmKey, Priority, Transition
from twin.alarms.log import AlarmLog, AlarmQuery
from twin.alarms.points import alarm_points
from twin.history.points import PointSink

log = logging.getLogger(__name__)

_lock = threading.Lock()


@dataclass(frozen=True)
class Condition:
    """One condition a rule sees now: the alarm it raises, its priority, what it
    says, and the evidence (numbers an operator can check)."""

    key: AlarmKey
    priority: Priority
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)


Listener = Callable[[Transition], None]


class LineAlarms:
    """One line's book, its record and its listeners."""

    def __init__(
        self,
        line_id: str,
        log_path: Path | None,
        *,
        writer: PointSink | None = None,
        place: Mapping[str, str] | None = None,
    ) -> None:
        """``log_path``: the history file the record goes in; ``writer``: history's
        way in, which also takes each change as an ``alarm`` point (and so copies it
        to InfluxDB), tagged with the line's ``place``."""
        self.line_id = line_id
        self.writer = writer
        self.place = dict(place or {"line": line_id})
        self.log = AlarmLog(log_path) if log_path is not None else None
        self.book = AlarmBook.replay(self.log.read()) if self.log is not None else AlarmBook()
        self.listeners: list[Listener] = []
        self.lost_records = 0
        # The rules run from the periodic task and from requests: one at a time.
        self._evaluating = threading.Lock()

    def evaluate(
        self,
        conditions: Iterable[Condition],
        at_s: float | None,
        judged: Callable[[AlarmKey], bool] = lambda key: True,
    ) -> list[Transition]:
        """Hand the rules' conditions of now to the book: raise what holds, clear what
        no longer does (of the alarms the rules could ``judged`` now: a station the
        twin has not heard from since a restart clears nothing), let expired
        shelves go. ``at_s`` None: the line's clock is not known yet (a twin that
        has heard nothing); the book's last time stands in and no shelf expires."""
        wall_ms = time.time_ns() // 1_000_000
        with self._evaluating:
            clock = at_s
            if at_s is None:
                at_s = max((a.changed_s or 0.0 for a in self.book.alarms()), default=0.0)
            made: list[Transition] = []
            holding = set()
            for condition in conditions:
                holding.add(condition.key.id)
                made += self.book.condition(
                    condition.key,
                    True,
                    at_s,
                    priority=condition.priority,
                    message=condition.message,
                    evidence=condition.evidence,
                    wall_ms=wall_ms,
                )
            for alarm in self.book.alarms():
                if alarm.active and alarm.id not in holding and judged(alarm.key):
                    made += self.book.condition(alarm.key, False, at_s, wall_ms=wall_ms)
            if clock is not None:
                made += self.book.tick(clock, wall_ms=wall_ms)
            self.record(made)
            return made

    def record(self, transitions: Sequence[Transition]) -> None:
        """Keep ``transitions`` and tell the listeners. A record that cannot be
        written (a full disk) is counted and said in the log; the book goes on."""
        if not transitions:
            return
        if self.log is not None:
            try:
                self.log.append(transitions)
            except Exception:
                self.lost_records += len(transitions)
                log.exception("%d alarm records of %s not kept", len(transitions), self.line_id)
        if self.writer is not None:
            try:
                self.writer.write(alarm_points(transitions, self.place))
            except Exception:
                self.lost_records += len(transitions)
                log.exception("%d alarm points of %s not written", len(transitions), self.line_id)
        for listener in list(self.listeners):
            for transition in transitions:
                try:
                    listener(transition)
                except Exception:  # a listener never stops the alarms
                    log.exception("an alarm listener of %s failed", self.line_id)

    def records(self, query: AlarmQuery | None = None) -> list[Transition]:
        """The records ``query`` asks for (every one without a query), oldest first:
        from the line's history file, or for a book without one from its memory,
        filtered the same way."""
        if self.log is not None:
            return self.log.read(query)
        found = [t for alarm in self.book.alarms() for t in alarm.history]
        found.sort(key=lambda t: t.wall_ms)
        if query is None:
            return found
        found = [
            t
            for t in found
            if (query.from_ms is None or query.from_ms <= t.wall_ms)
            and (query.to_ms is None or t.wall_ms < query.to_ms)
            and query.station in (None, t.station)
            and query.sensor in (None, t.sensor)
            and query.priority in (None, t.priority)
        ]
        return found if query.limit is None else found[: max(0, query.limit)]

    def close(self) -> None:
        if self.log is not None:
            self.log.close()


def line_alarms(
    state: State,
    line_id: str,
    history_path: Path | None,
    *,
    writer: PointSink | None = None,
    place: Mapping[str, str] | None = None,
) -> LineAlarms:
    """The alarm book of ``line_id`` on this app, made on first use (its record
    beside the line's history when it has a history file, its changes as points
    through ``writer``)."""
    with _lock:
        books: dict[str, LineAlarms] | None = getattr(state, "alarm_books", None)
        if books is None:
            books = state.alarm_books = {}
        found = books.get(line_id)
        if found is None:
            found = books[line_id] = LineAlarms(line_id, history_path, writer=writer, place=place)
        return found


def records_lost(state: State) -> int:
    """Alarm records of every line on this app that could not be written."""
    with _lock:
        books: dict[str, LineAlarms] = getattr(state, "alarm_books", None) or {}
        return sum(book.lost_records for book in books.values())


def close_all(state: State) -> None:
    with _lock:
        books: dict[str, LineAlarms] = getattr(state, "alarm_books", None) or {}
        for book in books.values():
            book.close()
        books.clear()
