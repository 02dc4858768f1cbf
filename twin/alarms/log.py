"""The alarms' record: every transition, kept in the history store's SQLite file.

The alarm history is what an operator asks after a shift ("what happened on the
night shift?") and what the alarm book is rebuilt from after a restart
(``AlarmBook.replay``), so it is written at once and on disk when ``append``
returns (one small transaction: alarms change a few times an hour, not a
thousand times a second like the samples). It lives in its own table of the
history file, ``alarm_events``, one row per transition, indexed by wall-clock
time; the row holds the transition as JSON beside the columns a query filters
on. Samples' retention does not apply: an alarm record is kept until the file
is.

The connection is the log's own, so it never waits on the samples' writer
thread; SQLite's WAL mode lets both write to one file.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from twin.alarms.lifecycle import Priority, Transition

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alarm_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    wall_ms INTEGER NOT NULL,
    at_s REAL NOT NULL,
    alarm_id TEXT NOT NULL,
    station TEXT,
    sensor TEXT,
    priority TEXT NOT NULL,
    event TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alarm_events_by_time ON alarm_events (wall_ms);
"""
BUSY_TIMEOUT_S = 10.0
MAX_ROWS = 10_000


@dataclass(frozen=True)
class AlarmQuery:
    """Which records: a wall-clock window (ms; either end open), and only those of
    a station, a sensor or a priority when given; at most ``limit`` (None: all),
    oldest first."""

    from_ms: int | None = None
    to_ms: int | None = None
    station: str | None = None
    sensor: str | None = None
    priority: Priority | None = None
    limit: int | None = MAX_ROWS


class AlarmLog:
    """Append and read alarm transitions in the SQLite file at ``path`` (the history
    store's, or a file of its own)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_S
        )
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)

    def append(self, transitions: Sequence[Transition]) -> None:
        """Write ``transitions`` in one transaction: all of them or none."""
        if not transitions:
            return
        rows = [
            (
                t.wall_ms,
                t.at_s,
                t.alarm_id,
                t.station,
                t.sensor,
                t.priority,
                t.event,
                json.dumps(t.as_dict(), separators=(",", ":"), allow_nan=False),
            )
            for t in transitions
        ]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT INTO alarm_events (wall_ms, at_s, alarm_id, station, sensor, "
                    "priority, event, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def read(self, query: AlarmQuery | None = None) -> list[Transition]:
        """The records ``query`` asks for (every one without a query: what
        ``AlarmBook.replay`` needs), oldest first, in the order written."""
        query = query or AlarmQuery(limit=None)
        clauses, values = [], []
        for column, operator, value in (
            ("wall_ms", ">=", query.from_ms),
            ("wall_ms", "<", query.to_ms),
            ("station", "=", query.station),
            ("sensor", "=", query.sensor),
            ("priority", "=", query.priority),
        ):
            if value is not None:
                clauses.append(f"{column} {operator} ?")
                values.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        limit = -1 if query.limit is None else max(0, query.limit)  # -1: no limit
        sql = f"SELECT record FROM alarm_events{where} ORDER BY id LIMIT ?"  # noqa: S608 - fixed columns, values bound
        with self._lock:
            rows = self._db.execute(sql, (*values, limit)).fetchall()
        return [Transition.from_dict(json.loads(row[0])) for row in rows]

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM alarm_events").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
