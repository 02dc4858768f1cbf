"""Quiets the retry chatter of influxdb-client and urllib3 during an InfluxDB outage.

influxdb-client logs every retry at WARNING and every failed batch at ERROR, and
urllib3 every reconnect attempt; during an outage that is a line a second. The
InfluxDB sink reports the first problem of each kind itself (and what a close
left undelivered), so these records become DEBUG (dropped unless their logger is
enabled for DEBUG).

The filter knows those libraries by their logger names and the opening words of
their messages, which are theirs to change: checked against influxdb-client 1.50
and urllib3 2 (``tests/twin/history/test_influx_logs.py`` reads the installed
libraries' sources for them). A message reworded by a later release is no longer
recognised and is logged as the library logs it: louder, never lost.
"""

from __future__ import annotations

import logging

__all__ = ["CHATTY_LOGGERS", "MARKERS", "QuietRetryChatter", "quiet_retry_chatter"]

# The loggers that chatter, and the opening words of their messages that are chatter.
CHATTY_LOGGERS = (
    "influxdb_client.client.write.retry",
    "influxdb_client.client.write_api",
    "urllib3.connectionpool",
)
MARKERS = (
    "The retriable error occurred",
    "The batch item wasn't processed successfully",
    "Reached max_close_wait",
)
# urllib3's reconnect attempts, chatter only for a write to InfluxDB's API.
URLLIB3_RETRY = "Retrying ("
INFLUX_WRITE_PATH = "/api/v2/write"


class QuietRetryChatter(logging.Filter):
    """Turns the chatter's records into DEBUG ones; lets every other record pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG:
            return True
        text = str(record.msg)
        chatter = text.startswith(MARKERS) or (
            text.startswith(URLLIB3_RETRY) and INFLUX_WRITE_PATH in record.getMessage()
        )
        if not chatter:
            return True
        record.levelno = logging.DEBUG
        record.levelname = logging.getLevelName(logging.DEBUG)
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


_QUIET = QuietRetryChatter()


def quiet_retry_chatter() -> None:
    """Put the filter on the chatty loggers (once, however often called)."""
    for name in CHATTY_LOGGERS:
        logger = logging.getLogger(name)
        if _QUIET not in logger.filters:
            logger.addFilter(_QUIET)
