"""The InfluxDB sink's settings: how it batches, retries and replays, and the
checks on its URL and token (a bad setting is an ``InfluxConfigError`` that says
which and why, never the token)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import SecretStr

from twin.history.line_protocol import RECORD_LINES_MAX

DEFAULT_NAME = "influxdb"
DEFAULT_BUCKET = "factory-twin"
ENV_URL = "INFLUXDB_V2_URL"


class InfluxConfigError(ValueError):
    """The InfluxDB settings cannot work; the message says which and why (never the token)."""


@dataclass(frozen=True, slots=True)
class InfluxOptions:
    """How the sink batches, retries and replays. Times in ms where influxdb-client
    takes ms (its ``WriteOptions``), in seconds for the sink's own waits."""

    batch_size: int = 5_000  # lines per HTTP request (at most; see the module doc)
    flush_interval_ms: int = 1_000  # a partial batch goes out after this long
    retry_interval_ms: int = 1_000  # first retry delay of a failed request
    max_retries: int = 5
    max_retry_delay_ms: int = 8_000
    # Caps one batch's retries; also how long a batch still retrying can hold
    # up the interpreter's exit after ``close`` gave up on it.
    max_retry_time_ms: int = 30_000
    exponential_base: int = 2
    timeout_ms: int = 10_000  # one HTTP request
    max_in_flight: int = 20_000  # lines handed to the WriteApi and not yet reported
    replay_backoff_s: float = 1.0  # pause before replaying from the mark after a failure
    replay_backoff_max_s: float = 60.0  # ... doubling per failed round up to this
    poll_interval_s: float = 1.0  # look at the store this often even without notify()
    # No callback for this long while lines are outstanding: the WriteApi is
    # considered wedged and replaced (its batches are replayed).
    stall_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        for name in ("batch_size", "flush_interval_ms", "max_in_flight", "timeout_ms"):
            if getattr(self, name) <= 0:
                raise InfluxConfigError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("replay_backoff_s", "poll_interval_s", "stall_timeout_s"):
            if getattr(self, name) <= 0:
                raise InfluxConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_retries < 0 or self.retry_interval_ms < 0:
            raise InfluxConfigError("max_retries and retry_interval_ms must not be negative")
        if self.replay_backoff_max_s < self.replay_backoff_s:
            raise InfluxConfigError("replay_backoff_max_s must be at least replay_backoff_s")


def record_lines_for(options: InfluxOptions) -> int:
    """Lines per record: the largest divisor of ``batch_size`` up to ``RECORD_LINES_MAX``,
    so that full requests keep exactly ``batch_size`` lines, and no more than
    ``max_in_flight``, so that a whole record always fits once nothing is in flight."""
    cap = min(RECORD_LINES_MAX, options.batch_size, options.max_in_flight)
    return max(lines for lines in range(1, cap + 1) if options.batch_size % lines == 0)


def secret_text(token: str | SecretStr | None) -> str | None:
    if isinstance(token, SecretStr):
        return token.get_secret_value() or None
    return token or None


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InfluxConfigError(
            f"InfluxDB URL {public_url(url)!r}: expected http(s)://host:port (for example "
            "http://127.0.0.1:8086)"
        )
    return url


def public_url(url: str) -> str:
    """The URL without any user:password part, for logs."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return parts._replace(netloc=netloc).geturl()
