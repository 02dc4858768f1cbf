"""The InfluxDB sink: a long-term copy of the history, fed by tailing the embedded store.

Every point reaches the embedded store first (``twin.history.points.HistoryWriter``);
this sink follows the store from a high-water mark, the store position InfluxDB
last acknowledged, kept in the store itself (``store.mark(name)``). It reads the
samples after the mark, writes them through influxdb-client's batching
``WriteApi`` and moves the mark only over samples InfluxDB acknowledged, in
store order. An outage therefore costs nothing the store still holds: the
client retries with exponential back-off, a batch that fails for good makes the
sink rewind to the mark and replay after a back-off of its own, and whatever
retention deletes before the sink had it is counted by the store
(``store.lost(name)``), never dropped silently.

Acknowledgements map back to positions like this. Each stored sample becomes
one line of line protocol. The sink hands the ``WriteApi`` records of a few
lines each (``record_lines``, joined by newlines) and keeps the same records,
each with the last store position it completes, in a FIFO in submission order.
The ``WriteApi`` cuts its batches out of that stream of records (``batch_size
/ record_lines`` records or ``flush_interval``, whichever comes first), joins
them with newlines and writes them one at a time on a single worker, so every
callback reports the next whole records of the FIFO; the sink checks that the
reported body is exactly those records before it counts their lines as
acknowledged and moves the mark to the end of the last one. A failure, or a
body that does not match, stops the mark until every outstanding record has
been reported; then the sink rewinds to the mark. Replayed lines InfluxDB
already had are harmless: a point with the same series and time replaces the
one stored.

The line protocol and its records are ``twin.history.line_protocol``; the
options, the URL and the token checks ``twin.history.influx_options``.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque
from typing import Any, TypedDict

from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import WriteApi, WriteOptions, WriteType
from influxdb_client.domain.write_precision import WritePrecision
from pydantic import SecretStr
from reactivex.scheduler import ThreadPoolScheduler

from twin.history.influx_logs import quiet_retry_chatter
from twin.history.influx_options import (
    DEFAULT_BUCKET,
    DEFAULT_NAME,
    ENV_URL,
    InfluxConfigError,
    InfluxOptions,
    check_url,
    public_url,
    record_lines_for,
    secret_text,
)
from twin.history.line_protocol import LineRecord, encode_records
from twin.history.points import HistoryStore

log = logging.getLogger(__name__)

# The generated WritePrecision holds plain strings while the client's hints ask
# for a WritePrecision (and hint its optional arguments without None): these
# values go in through Any-typed keyword dicts.
_MS: Any = WritePrecision.MS


class InfluxHealth(TypedDict):
    written: int  # samples InfluxDB acknowledged, in store order (the mark moved over them)
    failed: int  # samples in batches that failed after all retries (replayed later)
    retries: int  # HTTP attempts the client retried
    pending: int | None  # store positions after the mark (None: the store cannot say)
    lost: int | None  # samples retention deleted before InfluxDB had them
    last_error: str | None
    connected: bool | None  # outcome of the last request; None before the first
    mark: int  # the acknowledged position
    in_flight: int  # lines handed to the client, not yet reported
    dropped: int  # non-finite values line protocol cannot carry
    replays: int  # rewinds to the mark after a failed round


def _status(exception: BaseException) -> int | None:
    status = getattr(exception, "status", None)
    if status is None:
        status = getattr(getattr(exception, "response", None), "status", None)
    return status if isinstance(status, int) else None


class InfluxSink:
    """A ``twin.history.points.Sink`` that copies the store to InfluxDB (see the module doc).

    It owns ``client`` and closes it. Its thread starts at construction, so a
    backlog left by an earlier run (samples after the mark) goes out at once.
    """

    def __init__(
        self,
        store: HistoryStore,
        client: InfluxDBClient,
        bucket: str,
        *,
        org: str | None = None,
        name: str = DEFAULT_NAME,
        options: InfluxOptions | None = None,
    ) -> None:
        if not bucket:
            raise InfluxConfigError("the InfluxDB bucket must not be empty")
        self.store = store
        self.client = client
        self.bucket = bucket
        self.org: str | None = org or client.org
        self.name = name
        self.options = options or InfluxOptions()
        self._write_args: dict[str, Any] = {"org": self.org, "write_precision": _MS}
        self.url = public_url(str(client.url))
        self._token: str | None = client.token or None
        quiet_retry_chatter()

        self._cond = threading.Condition()
        self._wake = True  # the first round reads at once: a backlog goes out without a poll wait
        self._stopping = False
        self._deadline = math.inf
        # Registering the mark makes the store count what retention takes from us.
        self._acked = store.mark(name)
        store.set_mark(name, self._acked)
        self._saved = self._acked
        self._cursor = self._acked  # last position handed to the client
        self._record_lines = record_lines_for(self.options)
        self._in_flight: deque[LineRecord] = deque()
        self._in_flight_lines = 0
        # Series id -> the start of its lines; ids name the same series for the store's life.
        self._prefixes: dict[int, str] = {}
        self._failed = False  # a batch of this round failed: rewind once all are reported
        self._backoff = self.options.replay_backoff_s
        self._last_progress = time.monotonic()

        self._written = 0
        self._failed_samples = 0
        self._retries = 0
        self._dropped = 0
        self._replays = 0
        self._last_error: str | None = None
        self._connected: bool | None = None
        self._reported_kinds: set[str] = set()

        self._generation = 0
        self._api, self._scheduler, self._write_options = self._open_api(self._generation)
        self._thread = threading.Thread(target=self._run, name=f"sink-{name}", daemon=True)
        self._thread.start()

    # -- construction from settings ----------------------------------------------------------
    @classmethod
    def from_config(
        cls,
        url: str,
        org: str | None,
        bucket: str | None,
        token: str | SecretStr | None,
        *,
        store: HistoryStore,
        name: str = DEFAULT_NAME,
        options: InfluxOptions | None = None,
    ) -> InfluxSink:
        """A sink from explicit settings (``FACTORY_TWIN_INFLUX_URL/ORG/BUCKET/TOKEN``)."""
        opts = options or InfluxOptions()
        settings: dict[str, Any] = {
            "url": check_url(url),
            "token": secret_text(token),
            "org": org or None,
            "timeout": opts.timeout_ms,
        }
        client = InfluxDBClient(**settings)
        return cls(store, client, bucket or DEFAULT_BUCKET, name=name, options=opts)

    @classmethod
    def from_env(
        cls,
        store: HistoryStore,
        bucket: str | None = None,
        *,
        name: str = DEFAULT_NAME,
        options: InfluxOptions | None = None,
    ) -> InfluxSink | None:
        """A sink from influxdb-client's own environment (``INFLUXDB_V2_URL``, ``_ORG``,
        ``_TOKEN``, ``_TIMEOUT``, ``_VERIFY_SSL``...) through
        ``InfluxDBClient.from_env_properties()``; None when ``INFLUXDB_V2_URL`` is unset
        (the client would otherwise fall back to localhost and a made-up token)."""
        url = os.environ.get(ENV_URL, "").strip()
        if not url:
            return None
        check_url(url)
        client = InfluxDBClient.from_env_properties()  # type: ignore[no-untyped-call]
        return cls(store, client, bucket or DEFAULT_BUCKET, name=name, options=options)

    # -- the Sink protocol ---------------------------------------------------------------------
    def notify(self) -> None:
        with self._cond:
            self._wake = True
            self._cond.notify_all()

    def close(self, timeout: float = 10.0) -> None:
        """Deliver everything the store holds (flushing the client's batches), then stop.

        What InfluxDB has not acknowledged when ``timeout`` runs out stays after the
        mark in the store and goes out at the next start.
        """
        with self._cond:
            if not self._stopping:
                self._stopping = True
                self._deadline = time.monotonic() + max(0.0, timeout)
            self._wake = True
            self._cond.notify_all()
        self._thread.join(max(0.0, timeout) + 5.0)
        if self._thread.is_alive():
            log.warning("InfluxDB sink %s: still busy after %.1f s; leaving it", self.name, timeout)
            return
        self.client.close()  # type: ignore[no-untyped-call]

    def health(self) -> InfluxHealth:
        with self._cond:
            mark = self._acked
            snapshot = InfluxHealth(
                written=self._written,
                failed=self._failed_samples,
                retries=self._retries,
                pending=None,
                lost=None,
                last_error=self._last_error,
                connected=self._connected,
                mark=mark,
                in_flight=self._in_flight_lines,
                dropped=self._dropped,
                replays=self._replays,
            )
        # Health must answer even when the store is closed or busy failing.
        try:
            snapshot["pending"] = self.store.count_after(mark)
            snapshot["lost"] = self.store.lost(self.name)
        except Exception as exc:
            log.debug("InfluxDB sink %s: store unavailable for health: %s", self.name, exc)
        return snapshot

    # -- the client ----------------------------------------------------------------------------
    def _open_api(self, generation: int) -> tuple[WriteApi, ThreadPoolScheduler, WriteOptions]:
        opts = self.options
        # One worker of our own: batches are written one after another, in order
        # (WriteOptions' default scheduler is one pool shared by every WriteApi).
        scheduler = ThreadPoolScheduler(max_workers=1)
        write_options = WriteOptions(
            write_type=WriteType.batching,
            batch_size=opts.batch_size // self._record_lines,  # counted in records
            flush_interval=opts.flush_interval_ms,
            retry_interval=opts.retry_interval_ms,
            max_retries=opts.max_retries,
            max_retry_delay=opts.max_retry_delay_ms,
            max_retry_time=opts.max_retry_time_ms,
            exponential_base=opts.exponential_base,
            write_scheduler=scheduler,
            # Bounds the wait if the WriteApi is ever closed by the garbage
            # collector rather than by us (its default is five minutes).
            max_close_wait=opts.max_retry_time_ms + opts.timeout_ms,
        )

        def on_success(conf: object, data: str | bytes) -> None:
            self._on_success(generation, data)

        def on_error(conf: object, data: str | bytes, exception: Exception) -> None:
            self._on_error(generation, data, exception)

        def on_retry(conf: object, data: str | bytes, exception: Exception) -> None:
            self._on_retry(generation, exception)

        api = self.client.write_api(
            write_options=write_options,
            success_callback=on_success,
            error_callback=on_error,
            retry_callback=on_retry,
        )
        return api, scheduler, write_options

    def _retire_api(self, wait_s: float) -> bool:
        """Flush the WriteApi's open batch, wait up to ``wait_s`` for the reports, then
        retire it: later reports are ignored, and whatever it did not get acknowledged
        is replayed from the mark by the next one. True if all it was given arrived."""
        self._write_options.max_close_wait = max(1, int(wait_s * 1000))
        self._api.close()  # type: ignore[no-untyped-call]
        with self._cond:
            delivered = not self._failed and not self._in_flight
            self._generation += 1
            self._in_flight.clear()
            self._in_flight_lines = 0
            self._failed = False
            if self._cursor != self._acked:
                self._replays += 1
            self._cursor = self._acked
            self._last_progress = time.monotonic()
        # Batches not started yet are dropped; one still retrying ends on its own
        # (within max_retry_time) and is reported to nobody.
        self._scheduler.executor.shutdown(wait=False, cancel_futures=True)
        return delivered

    def _reopen_api(self) -> None:
        self._api, self._scheduler, self._write_options = self._open_api(self._generation)

    # -- callbacks (on the WriteApi's worker thread) ------------------------------------------
    def _take(self, body: bytes) -> tuple[int, int, bool]:
        """Remove the outstanding records a reported ``body`` covers: their lines, the last
        position they complete, and whether the body is exactly those records."""
        taken: list[LineRecord] = []
        size = -1  # the client joins records with one newline each
        while size < len(body) and self._in_flight:
            record = self._in_flight.popleft()
            taken.append(record)
            size += len(record.body) + 1
        lines = sum(record.lines for record in taken)
        self._in_flight_lines -= lines
        matches = (
            bool(taken)
            and size == len(body)
            and b"\n".join(record.body for record in taken) == body
        )
        return lines, taken[-1].end if taken else self._acked, matches

    def _on_success(self, generation: int, data: str | bytes) -> None:
        body = data.encode() if isinstance(data, str) else bytes(data)
        with self._cond:
            if generation != self._generation:
                return
            self._last_progress = time.monotonic()
            lines, reached, matches = self._take(body)
            if not matches:
                self._failed = True
            elif not self._failed:
                self._acked = reached
                self._written += lines
                self._backoff = self.options.replay_backoff_s
            recovered = self._connected is False
            self._connected = True
            self._wake = True
            self._cond.notify_all()
        if not matches:
            log.error(
                "InfluxDB sink %s: an acknowledged batch is not the next one sent; "
                "replaying from the mark",
                self.name,
            )
        if recovered:
            self._reported_kinds.clear()
            log.info("InfluxDB at %s accepts writes again", self.url)

    def _on_error(self, generation: int, data: str | bytes, exception: Exception) -> None:
        body = data.encode() if isinstance(data, str) else bytes(data)
        with self._cond:
            if generation != self._generation:
                return
            self._last_progress = time.monotonic()
            lines, _, _ = self._take(body)
            self._failed_samples += lines
            self._failed = True
            self._connected = False
            self._last_error = self._describe(exception)
            self._wake = True
            self._cond.notify_all()
        self._report(
            "failed",
            exception,
            f"a batch of {lines} samples failed after retries; "
            "replaying from the mark after a pause",
        )

    def _on_retry(self, generation: int, exception: Exception) -> None:
        with self._cond:
            if generation != self._generation:
                return
            self._last_progress = time.monotonic()
            self._retries += 1
            self._connected = False
            self._last_error = self._describe(exception)
        self._report("retry", exception, "retrying")

    def _describe(self, exception: BaseException) -> str:
        status = _status(exception)
        text = f"{type(exception).__name__}: {exception}"
        if status is not None and str(status) not in text:
            text = f"HTTP {status} {text}"
        if self._token:
            text = text.replace(self._token, "***")
        return text[:500]

    def _report(self, what: str, exception: BaseException, action: str) -> None:
        """The first problem of a kind at WARNING, its repeats at DEBUG (until writes work)."""
        kind = f"{what}:{type(exception).__name__}:{_status(exception)}"
        first = kind not in self._reported_kinds
        self._reported_kinds.add(kind)
        log.log(
            logging.WARNING if first else logging.DEBUG,
            "InfluxDB at %s (bucket %s): %s; %s",
            self.url,
            self.bucket,
            self._describe(exception),
            action,
        )

    # -- the sink's thread ---------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            try:
                if self._step():
                    return
            except Exception:
                # A store that fails to read must not kill the sink: it tries again.
                log.exception("InfluxDB sink %s: unexpected error; retrying", self.name)
                self._pause(self.options.poll_interval_s)

    def _step(self) -> bool:
        """One round of the loop; True when the sink is done (closed)."""
        with self._cond:
            if not self._wake:
                self._cond.wait(0.05 if self._stopping else self.options.poll_interval_s)
            self._wake = False
            stopping = self._stopping
            failed, outstanding = self._failed, bool(self._in_flight)
            stalled = outstanding and (
                time.monotonic() - self._last_progress > self.options.stall_timeout_s
            )
        self._save_mark()
        if stopping:
            return self._step_closing(failed)
        if stalled:
            log.warning(
                "InfluxDB sink %s: no report on outstanding batches for %.0f s; replacing the "
                "write API and replaying from the mark",
                self.name,
                self.options.stall_timeout_s,
            )
            self._retire_api(0.0)
            self._reopen_api()
        elif failed and not outstanding:
            # Every line of the failed round is reported: replay from the mark.
            self._pause(self._next_backoff())
            self._rewind()
        elif not failed:
            self._submit_available()
        return False

    def _step_closing(self, failed: bool) -> bool:
        """Deliver what the store holds by the deadline: flush the client's batches rather
        than wait for its timer, and replay from the mark while something failed."""
        if time.monotonic() >= self._deadline:
            return self._give_up()
        caught_up = not failed and self._submit_available()
        if not (caught_up or failed):
            return False  # more to hand over once the client reports
        delivered = self._retire_api(self._deadline - time.monotonic())
        self._save_mark()
        if delivered:
            return True
        self._pause(self._next_backoff())
        self._reopen_api()
        return False

    def _give_up(self) -> bool:
        with self._cond:
            behind = self._in_flight_lines or self._failed
        self._retire_api(0.0)
        self._save_mark()
        if behind:
            log.warning(
                "InfluxDB sink %s: closing with samples %s has not acknowledged; they stay "
                "in the store after the mark and go out at the next start",
                self.name,
                self.url,
            )
        return True

    def _next_backoff(self) -> float:
        with self._cond:
            pause = self._backoff
            self._backoff = min(self._backoff * 2, self.options.replay_backoff_max_s)
        return pause

    def _pause(self, seconds: float) -> bool:
        """Wait ``seconds`` (less when closing); True if cut short by ``close``."""
        with self._cond:
            was_stopping = self._stopping
            end = min(time.monotonic() + seconds, self._deadline)
            while not (self._stopping and not was_stopping):
                remaining = end - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def _rewind(self) -> None:
        with self._cond:
            self._failed = False
            self._cursor = self._acked
            self._replays += 1
            self._last_progress = time.monotonic()

    def _save_mark(self) -> None:
        with self._cond:
            acked = self._acked
        if acked > self._saved:
            self.store.set_mark(self.name, acked)
            self._saved = acked

    def _submit_available(self) -> bool:
        """Hand the samples after the cursor to the client; True once caught up with the store."""
        record_lines = self._record_lines
        while True:
            with self._cond:
                if self._failed:
                    return False
                room = self.options.max_in_flight - self._in_flight_lines
                cursor, generation = self._cursor, self._generation
            # Whole records only, so that a backlog fills every request: with less room
            # than a record something is in flight (record_lines <= max_in_flight), and
            # its report makes room.
            if room < record_lines:
                return False
            limit = min(room, self.options.batch_size)
            limit -= limit % record_lines
            rows, series = self.store.read_rows_after(cursor, limit)
            if not rows:
                return True
            records = encode_records(rows, series, record_lines, self._prefixes)
            end = rows[-1][0]
            lines = sum(record.lines for record in records)
            with self._cond:
                if generation != self._generation or cursor != self._cursor:
                    return False
                self._dropped += len(rows) - lines
                if not self._in_flight:
                    self._last_progress = time.monotonic()
                if records:
                    self._in_flight.extend(records)
                    self._in_flight_lines += lines
                elif self._in_flight:
                    # Nothing deliverable: done once everything before it is acknowledged.
                    self._in_flight[-1].end = end
                else:
                    self._acked = end  # nothing deliverable and nothing before it
                self._cursor = end
            if records:
                self._api.write(
                    self.bucket, record=[record.body for record in records], **self._write_args
                )
            if len(rows) < limit:
                return True


def influx_sink(
    store: HistoryStore,
    *,
    url: str | None = None,
    org: str | None = None,
    bucket: str | None = None,
    token: str | SecretStr | None = None,
    name: str = DEFAULT_NAME,
    options: InfluxOptions | None = None,
) -> InfluxSink | None:
    """The sink the configuration asks for, or None (no InfluxDB configured).

    ``FACTORY_TWIN_INFLUX_URL`` set (``url``): the ``FACTORY_TWIN_INFLUX_*`` settings
    alone configure the client; influxdb-client's variables are not mixed in.
    Otherwise ``INFLUXDB_V2_URL`` set: ``InfluxDBClient.from_env_properties()``.
    The bucket always comes from ``FACTORY_TWIN_INFLUX_BUCKET`` (influxdb-client
    has no variable for it), ``factory-twin`` by default.
    """
    if url:
        return InfluxSink.from_config(
            url, org, bucket, token, store=store, name=name, options=options
        )
    return InfluxSink.from_env(store, bucket, name=name, options=options)
