"""The embedded history store: SQLite from the standard library, nothing to install.

Why SQLite: it ships with Python, survives a crash of the process (a committed
transaction is in the write-ahead log before ``commit`` returns), lets the API
read while the writer writes (WAL mode), and answers range queries from a
B-tree index in microseconds. A time-series engine would compress better; at a
twin's rates (hundreds of samples a second) SQLite keeps up with room to spare
(``bench/store_speed.py``) and needs nothing on the user's machine.

Layout: ``series`` holds one row per (measurement, field, tags); ``samples``
holds (series, time, value) rows with an index on (series, time), so a range
query reads one contiguous slice of the index per series. Writes are queued and
committed in batches by one writer thread; ``flush()`` returns once everything
queued before it is on disk, which is what "acknowledged" means here.

A file at the configured path that is not a factory-twin store (not SQLite, a
foreign SQLite database, a newer layout, or damaged) stops the start with a
message saying so; it is never overwritten.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

from twin.history.points import (
    Aggregate,
    Point,
    SeriesKey,
    SeriesResult,
    StoredSample,
    Window,
)

log = logging.getLogger(__name__)

# "FTws" (factory-twin store) in the SQLite header's application_id slot.
APPLICATION_ID = 0x46547773
LAYOUT_VERSION = 1
DEFAULT_RETENTION_MS = 7 * 24 * 3600 * 1000
SQLITE_MAGIC = b"SQLite format 3\x00"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    measurement TEXT NOT NULL,
    field TEXT NOT NULL,
    tags TEXT NOT NULL,
    UNIQUE (measurement, field, tags)
);
CREATE TABLE IF NOT EXISTS samples (
    -- AUTOINCREMENT: a position is never reused, even after retention deleted
    -- the newest rows, so a sink's mark never skips new samples.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    series INTEGER NOT NULL REFERENCES series (id),
    t_ms INTEGER NOT NULL,
    value REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS samples_by_series_time ON samples (series, t_ms);
CREATE TABLE IF NOT EXISTS marks (
    sink TEXT PRIMARY KEY,
    position INTEGER NOT NULL DEFAULT 0,
    lost INTEGER NOT NULL DEFAULT 0
);
"""
# Backfills begun and not finished (the process stopped first): the next start
# fills the rest. Added without a layout change: older versions ignore it.
_BACKFILLS = """
CREATE TABLE IF NOT EXISTS backfills (
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    PRIMARY KEY (start_ms, end_ms)
);
"""
# A bulk writer (write_columns) waits while this many samples are queued, so that
# a backfill cannot outrun the disk into memory; live writes never wait.
MAX_QUEUED_BULK_SAMPLES = 200_000
# Bulk samples wake the writer only from this many on (else its flush interval
# does): a commit rewrites every index page it touched, so a backfill committed
# in fewer, larger transactions costs less (about 15% less CPU at 100k than at 20k).
BULK_COMMIT_SAMPLES = 100_000
_INSERT = "INSERT INTO samples (series, t_ms, value) VALUES (?, ?, ?)"
# Rows per INSERT statement: SQLite runs one statement of many rows for about half
# the instructions per row of as many one-row statements (the statement's own
# work, AUTOINCREMENT's counter among it, is paid once), with rows, ids and order
# the same. 250 rows are 750 parameters, below SQLite's limit (999 before 3.32).
ROWS_PER_INSERT = 250
_INSERT_MANY = "INSERT INTO samples (series, t_ms, value) VALUES " + ", ".join(  # noqa: S608 - placeholders only
    ["(?, ?, ?)"] * ROWS_PER_INSERT
)


class StoreError(RuntimeError):
    """The store cannot be used; the message says why and what to do."""


@dataclass
class StoreStats:
    queued: int = 0
    acknowledged: int = 0  # samples committed to disk
    batches: int = 0
    retention_deleted: int = 0
    not_finite: int = 0  # NaN or infinite values, not stored
    last_error: str | None = None


def _tags_text(tags: Mapping[str, str]) -> str:
    return json.dumps(sorted(tags.items()), separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class _Columns:
    """Samples as columns: ``series[i]`` indexes ``keys``; see ``write_columns``."""

    keys: tuple[SeriesKey, ...]
    series: Sequence[int]
    times: Sequence[int]
    values: Sequence[float]


_Queued: TypeAlias = Point | _Columns


def _insert(db: sqlite3.Connection, flat: Sequence[Any]) -> None:
    """Insert rows given as flat parameters, in order, ``ROWS_PER_INSERT`` a statement."""
    rows = len(flat) // 3
    whole = rows - rows % ROWS_PER_INSERT
    step = 3 * ROWS_PER_INSERT
    if whole:
        db.executemany(
            _INSERT_MANY, [flat[start : start + step] for start in range(0, 3 * whole, step)]
        )
    if whole < rows:
        db.executemany(
            _INSERT, [flat[start : start + 3] for start in range(3 * whole, 3 * rows, 3)]
        )


class SqliteStore:
    """``HistoryStore`` on one SQLite file (``":memory:"`` is not supported:
    the writer and the readers need their own connections to one database)."""

    def __init__(
        self,
        path: str | Path,
        *,
        retention_ms: int | None = DEFAULT_RETENTION_MS,
        batch_samples: int = 20_000,
        flush_interval_s: float = 0.25,
        durable: bool = False,
        retention_every_s: float | None = 60.0,
    ) -> None:
        self.path = Path(path)
        self.retention_ms = retention_ms
        self.batch_samples = batch_samples
        self.flush_interval_s = flush_interval_s
        # How often the writer thread applies retention by itself (None: only
        # when apply_retention is called).
        self.retention_every_s = retention_every_s
        self.stats = StoreStats()
        self._check_file()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # synchronous=NORMAL in WAL mode: a commit survives a crash of the
        # process; FULL (durable) also survives losing power, at a cost per batch.
        self._writer = self._connect()
        self._init_schema()  # before any pragma that writes: a foreign file stays as it was
        self._set_mode(self._writer, "FULL" if durable else "NORMAL")
        self._reader = self._connect()
        self._set_mode(self._reader, "NORMAL")
        self._read_lock = threading.Lock()
        self._series_ids: dict[tuple[str, str, str], int] = {}
        self._series: dict[int, SeriesKey] = {}
        self._series_lock = threading.Lock()
        self._load_series()
        self._queue: list[_Queued] = []
        self._queued_samples = 0
        self._submitted = 0  # samples handed to write(), ever
        self._committed = 0  # of those, committed
        self._cond = threading.Condition()
        self._closing = False
        self._last_retention = 0.0
        self._thread = threading.Thread(target=self._run, name="history-writer", daemon=True)
        self._thread.start()

    # -- opening -------------------------------------------------------------------------
    def _check_file(self) -> None:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        if self.path.is_dir():
            raise StoreError(f"history store {self.path} is a directory, not a file")
        with open(self.path, "rb") as handle:
            header = handle.read(len(SQLITE_MAGIC))
        if header != SQLITE_MAGIC:
            raise StoreError(
                f"history store {self.path} is not an SQLite database (a foreign or damaged "
                "file); it was left untouched. Move it away, or point "
                "FACTORY_TWIN_HISTORY_PATH at another file."
            )

    def _connect(self) -> sqlite3.Connection:
        try:
            return sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"history store {self.path} cannot be opened: {exc}; it was left untouched"
            ) from None

    def _set_mode(self, connection: sqlite3.Connection, synchronous: str) -> None:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(f"PRAGMA synchronous={synchronous}")

    def _init_schema(self) -> None:
        db = self._writer
        try:
            application_id = db.execute("PRAGMA application_id").fetchone()[0]
            version = db.execute("PRAGMA user_version").fetchone()[0]
            tables = {
                row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            if application_id == 0 and not tables:
                db.executescript(_SCHEMA + _BACKFILLS)
                db.execute(f"PRAGMA application_id={APPLICATION_ID}")
                db.execute(f"PRAGMA user_version={LAYOUT_VERSION}")
                return
            if application_id != APPLICATION_ID:
                raise StoreError(
                    f"history store {self.path} is an SQLite database of another application "
                    f"(tables: {', '.join(sorted(tables)) or 'none'}); it was left untouched. "
                    "Point FACTORY_TWIN_HISTORY_PATH at another file."
                )
            if version > LAYOUT_VERSION:
                raise StoreError(
                    f"history store {self.path} has layout {version}, newer than this "
                    f"factory-twin ({LAYOUT_VERSION}); upgrade factory-twin or use another file"
                )
            db.execute("SELECT count(*) FROM series").fetchone()
            db.execute("SELECT id FROM samples ORDER BY id DESC LIMIT 1").fetchone()
            if "backfills" not in tables:
                db.executescript(_BACKFILLS)  # a store from before the table
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"history store {self.path} is damaged ({exc}); it was left untouched. "
                "Move it away to start a new history."
            ) from None

    def _load_series(self) -> None:
        for series_id, measurement, field_name, tags in self._writer.execute(
            "SELECT id, measurement, field, tags FROM series"
        ):
            self._remember_series(series_id, measurement, field_name, tags)

    def _remember_series(
        self, series_id: int, measurement: str, field_name: str, tags: str
    ) -> None:
        self._series_ids[(measurement, field_name, tags)] = series_id
        self._series[series_id] = SeriesKey(measurement, field_name, dict(json.loads(tags)))

    # -- writing ---------------------------------------------------------------------------
    def write(self, points: Sequence[Point]) -> None:
        samples = sum(len(point.fields) for point in points)
        with self._cond:
            if self._closing:
                raise StoreError("history store is closed")
            self._queue.extend(points)
            self._queued_samples += samples
            self._submitted += samples
            self.stats.queued = self._queued_samples
            if self._queued_samples >= self.batch_samples:
                self._cond.notify_all()

    def write_columns(
        self,
        keys: Sequence[SeriesKey],
        series: Sequence[int],
        times: Sequence[int],
        values: Sequence[float],
    ) -> None:
        """Queue samples given as columns: sample ``i`` is ``values[i]`` at ``times[i]``
        of the series ``keys[series[i]]``. The bulk path (the backfill): no object per
        sample. Waits while the store is far behind; ``write`` never waits."""
        samples = len(values)
        if not len(series) == len(times) == samples:
            raise ValueError(
                f"columns of different lengths: {len(series)} series, {len(times)} times, "
                f"{samples} values"
            )
        if samples and not 0 <= min(series) <= max(series) < len(keys):
            raise ValueError(f"a series index outside the {len(keys)} keys given")
        batch = _Columns(tuple(keys), series, times, values)
        with self._cond:
            while self._queued_samples >= MAX_QUEUED_BULK_SAMPLES and not self._closing:
                self._cond.wait(1.0)
            if self._closing:
                raise StoreError("history store is closed")
            self._queue.append(batch)
            self._queued_samples += samples
            self._submitted += samples
            self.stats.queued = self._queued_samples
            if self._queued_samples >= max(self.batch_samples, BULK_COMMIT_SAMPLES):
                self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._submitted
            self._cond.notify_all()
            while self._committed < target:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining if remaining is not None else 1.0)
                if not self._thread.is_alive():
                    return self._committed >= target
            return True

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._queue and not self._closing:
                    self._cond.wait(self.flush_interval_s)
                batch, self._queue = self._queue, []
                count, self._queued_samples = self._queued_samples, 0
                closing = self._closing
            if batch:
                self._commit(batch, count)
            every = self.retention_every_s
            if (
                self.retention_ms is not None
                and every is not None
                and time.monotonic() - self._last_retention > every
            ):
                self._last_retention = time.monotonic()
                self._retention_now()
            if closing and not batch:
                with self._cond:
                    if not self._queue:
                        return

    def _commit(self, batch: list[_Queued], count: int) -> None:
        try:
            db = self._writer
            db.execute("BEGIN")
            # Parameters of the rows, flat: series, time, value, series, time, ...
            flat: list[Any] = []
            for item in batch:
                if isinstance(item, Point):
                    self._point_rows(db, item, flat)
                else:
                    flat.extend(self._column_rows(db, item))
            _insert(db, flat)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            # Nothing of the batch was acknowledged; it stays counted as queued
            # and is retried with the next batch.
            self.stats.last_error = str(exc)
            log.error("history store: a batch of %d samples failed: %s (retrying)", count, exc)
            self._rollback()
            with self._cond:
                self._queue[:0] = batch
                self._queued_samples += count
            time.sleep(1.0)
            return
        with self._cond:
            self._committed += count
            self.stats.acknowledged += count
            self.stats.batches += 1
            self.stats.queued = self._queued_samples
            self._cond.notify_all()

    def _point_rows(self, db: sqlite3.Connection, point: Point, flat: list[Any]) -> None:
        tags = _tags_text(point.tags)
        for field_name, value in point.fields.items():
            if not math.isfinite(value):
                # SQLite would store NaN as NULL; a reading that is not a
                # number is counted, never allowed to block the batch.
                self.stats.not_finite += 1
                continue
            key = (point.measurement, field_name, tags)
            series_id = self._series_ids.get(key)
            if series_id is None:
                series_id = self._new_series(db, key)
            flat += (series_id, point.time_ms, float(value))

    def _column_rows(self, db: sqlite3.Connection, columns: _Columns) -> list[Any]:
        """The columns' rows as flat parameters (series id, time, value, ...)."""
        ids = []
        for key in columns.keys:
            text = (key.measurement, key.field, _tags_text(key.tags))
            found = self._series_ids.get(text)
            ids.append(found if found is not None else self._new_series(db, text))
        series, times, values = columns.series, columns.times, columns.values
        # One sum finds a NaN or infinity anywhere (it would be NaN or infinite);
        # only then is each value checked.
        if not math.isfinite(sum(values)):
            keep = [index for index, value in enumerate(values) if math.isfinite(value)]
            self.stats.not_finite += len(values) - len(keep)
            series = [series[index] for index in keep]
            times = [times[index] for index in keep]
            values = [values[index] for index in keep]
        # Rows go in series by series (stable: each series' rows keep their order),
        # so that the (series, time) index is appended to page by page instead of
        # touched all over for every few rows of the ~130 series mixed in a batch.
        order = sorted(range(len(values)), key=series.__getitem__)
        flat: list[Any] = [None] * (3 * len(values))
        flat[0::3] = [ids[series[index]] for index in order]
        flat[1::3] = [times[index] for index in order]
        flat[2::3] = [values[index] for index in order]
        return flat

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):  # no transaction open: nothing to undo
            self._writer.execute("ROLLBACK")

    def _new_series(self, db: sqlite3.Connection, key: tuple[str, str, str]) -> int:
        measurement, field_name, tags = key
        cursor = db.execute(
            "INSERT INTO series (measurement, field, tags) VALUES (?, ?, ?)",
            (measurement, field_name, tags),
        )
        series_id = int(cursor.lastrowid or 0)
        with self._series_lock:
            self._remember_series(series_id, measurement, field_name, tags)
        return series_id

    # -- reading ---------------------------------------------------------------------------
    def series(self, measurement: str | None = None) -> list[SeriesKey]:
        with self._series_lock:
            keys = list(self._series.values())
        return [key for key in keys if measurement is None or key.measurement == measurement]

    def _matching(
        self, measurement: str, field_name: str, tags: Mapping[str, str] | None
    ) -> dict[str, tuple[dict[str, str], list[int]]]:
        """Series ids grouped by their tags; ``origin`` merged unless the filter names it."""
        wanted = dict(tags or {})
        merge_origin = "origin" not in wanted
        groups: dict[str, tuple[dict[str, str], list[int]]] = {}
        with self._series_lock:
            items = list(self._series.items())
        for series_id, key in items:
            if key.measurement != measurement or key.field != field_name:
                continue
            if any(key.tags.get(name) != value for name, value in wanted.items()):
                continue
            shown = {k: v for k, v in key.tags.items() if not (merge_origin and k == "origin")}
            group = groups.setdefault(_tags_text(shown), (shown, []))
            group[1].append(series_id)
        return groups

    def query(
        self,
        measurement: str,
        field: str,
        start_ms: int,
        end_ms: int,
        *,
        tags: Mapping[str, str] | None = None,
        every_ms: int | None = None,
        aggregate: Aggregate = "mean",
    ) -> list[SeriesResult]:
        if every_ms is not None and every_ms <= 0:
            raise ValueError(f"every_ms must be positive, got {every_ms}")
        results = []
        for _, (shown, ids) in sorted(self._matching(measurement, field, tags).items()):
            # Only placeholders and constant SQL go into the text; values are bound.
            marks = ",".join("?" * len(ids))
            where = f"series IN ({marks}) AND t_ms >= ? AND t_ms < ?"
            args: list[int] = [*ids, start_ms, end_ms]
            if every_ms is None:
                sql = f"SELECT t_ms, value, 1 FROM samples WHERE {where} ORDER BY t_ms, id"  # noqa: S608
                params: list[int] = args
            else:
                bucket = "(t_ms - ?) / ?"
                if aggregate == "last":
                    select = "value, max(t_ms)"
                else:
                    select = {"mean": "avg(value)", "min": "min(value)", "max": "max(value)"}[
                        aggregate
                    ]
                sql = (
                    f"SELECT {bucket} AS w, {select}, count(*) FROM samples "  # noqa: S608
                    f"WHERE {where} GROUP BY w ORDER BY w"
                )
                params = [start_ms, every_ms, *args]
            with self._read_lock:
                rows = self._reader.execute(sql, params).fetchall()
            if every_ms is None:
                windows = [Window(int(t), float(value), 1) for t, value, _ in rows]
            else:
                windows = [
                    Window(start_ms + int(row[0]) * every_ms, float(row[1]), int(row[-1]))
                    for row in rows
                ]
            results.append(SeriesResult(SeriesKey(measurement, field, shown), windows))
        return results

    def time_range(self) -> tuple[int, int] | None:
        """The oldest and newest sample time, or None when empty."""
        with self._read_lock:
            row = self._reader.execute("SELECT min(t_ms), max(t_ms) FROM samples").fetchone()
        if row is None or row[0] is None:
            return None
        return int(row[0]), int(row[1])

    def newest_ms(
        self, start_ms: int, end_ms: int, tags: Mapping[str, str] | None = None
    ) -> int | None:
        """The newest sample time in [start_ms, end_ms] among the series with these
        tags (all series without), or None. One index seek per series."""
        wanted = dict(tags or {})
        with self._series_lock:
            ids = [
                series_id
                for series_id, key in self._series.items()
                if all(key.tags.get(name) == value for name, value in wanted.items())
            ]
        newest: int | None = None
        with self._read_lock:
            for series_id in ids:
                row = self._reader.execute(
                    "SELECT t_ms FROM samples WHERE series = ? AND t_ms BETWEEN ? AND ? "
                    "ORDER BY t_ms DESC LIMIT 1",
                    (series_id, start_ms, end_ms),
                ).fetchone()
                if row is not None and (newest is None or row[0] > newest):
                    newest = int(row[0])
        return newest

    # -- backfills -----------------------------------------------------------------------
    def begin_backfill(self, start_ms: int, end_ms: int) -> None:
        """Note a backfill of [start_ms, end_ms] as begun: until ``end_backfill``, a
        later start sees it in ``unfinished_backfills`` and can fill the rest."""
        with self._read_lock:
            self._reader.execute(
                "INSERT OR IGNORE INTO backfills (start_ms, end_ms) VALUES (?, ?)",
                (start_ms, end_ms),
            )

    def end_backfill(self, start_ms: int, end_ms: int) -> None:
        with self._read_lock:
            self._reader.execute(
                "DELETE FROM backfills WHERE start_ms = ? AND end_ms = ?", (start_ms, end_ms)
            )

    def unfinished_backfills(self) -> list[tuple[int, int]]:
        """Backfills begun and not ended, as (start_ms, end_ms), oldest first."""
        with self._read_lock:
            rows = self._reader.execute(
                "SELECT start_ms, end_ms FROM backfills ORDER BY start_ms, end_ms"
            ).fetchall()
        return [(int(start), int(end)) for start, end in rows]

    def count(self) -> int:
        with self._read_lock:
            return int(self._reader.execute("SELECT count(*) FROM samples").fetchone()[0])

    # -- sinks ------------------------------------------------------------------------------
    def read_after(self, position: int, limit: int) -> list[StoredSample]:
        with self._read_lock:
            rows = self._reader.execute(
                "SELECT id, series, t_ms, value FROM samples WHERE id > ? ORDER BY id LIMIT ?",
                (position, limit),
            ).fetchall()
        with self._series_lock:
            keys = self._series
            return [
                StoredSample(
                    position=int(sample_id),
                    measurement=keys[series_id].measurement,
                    field=keys[series_id].field,
                    tags=keys[series_id].tags,
                    time_ms=int(t_ms),
                    value=float(value),
                )
                for sample_id, series_id, t_ms, value in rows
            ]

    def health(self) -> dict[str, Any]:
        with self._cond:
            return {
                "path": str(self.path),
                "acknowledged": self.stats.acknowledged,
                "queued": self._queued_samples,
                "batches": self.stats.batches,
                "retention_deleted": self.stats.retention_deleted,
                "not_finite": self.stats.not_finite,
                "last_error": self.stats.last_error,
            }

    def read_rows_after(
        self, position: int, limit: int
    ) -> tuple[list[tuple[int, int, int, float]], dict[int, SeriesKey]]:
        """``read_after`` as plain ``(position, series id, time_ms, value)`` rows, with the
        key of every series they name: no object per sample, for sinks that tail at speed."""
        with self._read_lock:
            rows: list[tuple[int, int, int, float]] = self._reader.execute(
                "SELECT id, series, t_ms, value FROM samples WHERE id > ? ORDER BY id LIMIT ?",
                (position, limit),
            ).fetchall()
        # A series is remembered before the batch that first uses it commits, so every
        # id read here is known.
        with self._series_lock:
            keys = self._series
            return rows, {series_id: keys[series_id] for series_id in {row[1] for row in rows}}

    def count_after(self, position: int) -> int:
        """Samples stored after ``position`` (what a sink at that mark has yet to send)."""
        with self._read_lock:
            row = self._reader.execute(
                "SELECT count(*) FROM samples WHERE id > ?", (position,)
            ).fetchone()
        return int(row[0])

    def last_position(self) -> int:
        with self._read_lock:
            row = self._reader.execute("SELECT max(id) FROM samples").fetchone()
        return int(row[0] or 0)

    def mark(self, sink: str) -> int:
        with self._read_lock:
            row = self._reader.execute(
                "SELECT position FROM marks WHERE sink = ?", (sink,)
            ).fetchone()
        return int(row[0]) if row else 0

    def set_mark(self, sink: str, position: int) -> None:
        with self._read_lock:
            self._reader.execute(
                "INSERT INTO marks (sink, position) VALUES (?, ?) "
                "ON CONFLICT (sink) DO UPDATE SET position = max(position, excluded.position)",
                (sink, position),
            )

    def lost(self, sink: str) -> int:
        with self._read_lock:
            row = self._reader.execute("SELECT lost FROM marks WHERE sink = ?", (sink,)).fetchone()
        return int(row[0]) if row else 0

    # -- retention ---------------------------------------------------------------------------
    def _retention_now(self) -> None:
        try:
            self.apply_retention(int(time.time() * 1000))
        except sqlite3.Error as exc:
            self.stats.last_error = str(exc)
            log.error("history store: retention failed: %s", exc)

    def apply_retention(self, now_ms: int) -> int:
        if self.retention_ms is None:
            return 0
        cutoff = now_ms - self.retention_ms
        with self._read_lock:
            db = self._reader
            db.execute("BEGIN IMMEDIATE")
            try:
                # A sink that has not delivered what is about to go loses it:
                # count it against the sink, never silently.
                for sink, position in db.execute("SELECT sink, position FROM marks").fetchall():
                    behind = db.execute(
                        "SELECT count(*) FROM samples WHERE id > ? AND t_ms < ?",
                        (position, cutoff),
                    ).fetchone()[0]
                    if behind:
                        db.execute(
                            "UPDATE marks SET lost = lost + ? WHERE sink = ?", (behind, sink)
                        )
                        log.warning(
                            "history: %d samples for %s aged out before it had them", behind, sink
                        )
                deleted = 0
                for (series_id,) in db.execute("SELECT id FROM series").fetchall():
                    cursor = db.execute(
                        "DELETE FROM samples WHERE series = ? AND t_ms < ?", (series_id, cutoff)
                    )
                    deleted += cursor.rowcount
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        self.stats.retention_deleted += deleted
        return deleted

    # -- closing -----------------------------------------------------------------------------
    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(30)
        with self._read_lock:
            self._reader.close()
        self._writer.close()
