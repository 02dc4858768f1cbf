"""The InfluxDB retry chatter is quieted, and only it.

The filter recognises other libraries' messages by their opening words, so the
first test reads the installed libraries' sources for them: a release that
rewords one fails here rather than turning the outage log loud unnoticed.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Iterator

import pytest

from twin.history.influx_logs import (
    CHATTY_LOGGERS,
    INFLUX_WRITE_PATH,
    MARKERS,
    URLLIB3_RETRY,
    QuietRetryChatter,
    quiet_retry_chatter,
)

# Where each marker is logged, and the module whose logger logs it.
SOURCES = {
    "The retriable error occurred": "influxdb_client.client.write.retry",
    "The batch item wasn't processed successfully": "influxdb_client.client.write_api",
    "Reached max_close_wait": "influxdb_client.client.write_api",
    URLLIB3_RETRY: "urllib3.connectionpool",
}


def test_the_markers_are_what_the_installed_libraries_log() -> None:
    assert set(SOURCES) == {*MARKERS, URLLIB3_RETRY}
    for marker, module_name in SOURCES.items():
        module = importlib.import_module(module_name)
        assert marker in inspect.getsource(module), (marker, module_name)
        # The module logs through the logger the filter sits on.
        assert module_name in CHATTY_LOGGERS
        loggers = [value for value in vars(module).values() if isinstance(value, logging.Logger)]
        assert any(logger.name == module_name for logger in loggers), module_name


def record(logger: str, level: int, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(logger, level, __file__, 1, msg, args, None)


@pytest.fixture
def debug_off() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in CHATTY_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.INFO)
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


@pytest.mark.parametrize(
    ("logger", "level", "msg", "args"),
    [
        (CHATTY_LOGGERS[0], logging.WARNING, "The retriable error occurred during request.", ()),
        (CHATTY_LOGGERS[1], logging.ERROR, "The batch item wasn't processed successfully %s", (1,)),
        (CHATTY_LOGGERS[1], logging.WARNING, "Reached max_close_wait (%s seconds)", (5,)),
        (CHATTY_LOGGERS[2], logging.WARNING, "Retrying (%r) ... %s", ("r", INFLUX_WRITE_PATH)),
    ],
)
def test_chatter_becomes_debug_and_is_dropped_unless_debug_is_on(
    debug_off: None, logger: str, level: int, msg: str, args: tuple[object, ...]
) -> None:
    quiet = QuietRetryChatter()
    chatter = record(logger, level, msg, *args)
    assert quiet.filter(chatter) is False
    assert (chatter.levelno, chatter.levelname) == (logging.DEBUG, "DEBUG")
    logging.getLogger(logger).setLevel(logging.DEBUG)
    assert quiet.filter(record(logger, level, msg, *args)) is True


@pytest.mark.parametrize(
    ("logger", "msg", "args"),
    [
        (CHATTY_LOGGERS[1], "Something else went wrong: %s", ("x",)),
        (CHATTY_LOGGERS[2], "Retrying (%r) ... %s", ("r", "/api/v2/query")),  # not a write
    ],
)
def test_everything_else_passes_unchanged(
    debug_off: None, logger: str, msg: str, args: tuple[object, ...]
) -> None:
    other = record(logger, logging.WARNING, msg, *args)
    assert QuietRetryChatter().filter(other) is True
    assert other.levelno == logging.WARNING


def test_the_filter_goes_on_each_chatty_logger_once() -> None:
    quiet_retry_chatter()
    quiet_retry_chatter()
    for name in CHATTY_LOGGERS:
        filters = logging.getLogger(name).filters
        assert sum(isinstance(f, QuietRetryChatter) for f in filters) == 1, name
