"""What every ``factory-twin`` command shares: exit codes, the one-line error,
loading a line file, settings from flags and FACTORY_TWIN_ variables, the
broker of a running line, and progress (a bar on a terminal, JSON lines for
the API's jobs). Every command imports it; beside it a command imports only
``arguments``, and ``data`` (train) or ``sweep`` (the backend flags)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from pydantic import ValidationError

from sensors.mqtt import MqttError
from twin.config.line import ConfigError, LineConfig, load_config
from twin.errors import all_problems

if TYPE_CHECKING:
    from tqdm import tqdm

    from sensors.mqtt import BrokerAddress
    from sensors.topics import LineTopics

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_REJECTED = 3
EXIT_NO_ANSWER = 4


def fail(message: str, code: int) -> NoReturn:
    print(f"factory-twin: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def load_line(path: str | Path | None) -> LineConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)


def settings_from_args(args: argparse.Namespace) -> Any:
    from api.settings import Settings

    overrides = {
        name: getattr(args, name)
        for name in (
            "config",
            "site",
            "speed",
            "seed",
            "api_host",
            "api_port",
            "mqtt_url",
            "mqtt_port",
            "history_path",
            "backfill_days",
            "line",
            "source",
            "opcua_port",
            "opcua_source",
            "opcua_map",
        )
        if getattr(args, name, None) is not None
    }
    if getattr(args, "no_backfill", False):
        overrides["backfill_days"] = 0
    if getattr(args, "demo", False):
        overrides["demo"] = True
    if getattr(args, "opcua", False):
        overrides["opcua"] = True
    if getattr(args, "twin_only", False):
        overrides["twin_only"] = True
    if getattr(args, "sparkplug", False):
        overrides["sparkplug"] = True
    if getattr(args, "allow_anonymous_mqtt", False):
        overrides["allow_anonymous_mqtt"] = True
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        # Without the rejected values: a setting may be a secret.
        problems = all_problems(exc)
        fail(f"invalid setting (flag or FACTORY_TWIN_ variable): {problems}", EXIT_USAGE)


def current_settings() -> Any:
    """The settings from the ``FACTORY_TWIN_`` variables alone (for a command
    without their flags); a bad one exits 2 naming it, as for ``up``."""
    return settings_from_args(argparse.Namespace())


def secret_text(value: Any) -> str | None:
    return None if value is None else str(value.get_secret_value())


def path_text(value: Path | None) -> str | None:
    return None if value is None else str(value)


def broker_address(url: str | None, port: int | None = None) -> BrokerAddress:
    """The broker of a running line, as ``up`` finds it: ``url`` (--mqtt-url), else
    FACTORY_TWIN_MQTT_URL, else the embedded broker on 127.0.0.1 at ``port``
    (--mqtt-port), else FACTORY_TWIN_MQTT_PORT, else 1883. Login and TLS from the
    same FACTORY_TWIN_ settings ``up`` reads; a bad setting exits 2 naming it."""
    from sensors.mqtt import parse_mqtt_url

    overrides: dict[str, Any] = {}
    if url is not None:
        overrides["mqtt_url"] = url
    if port is not None:
        overrides["mqtt_port"] = port
    settings = settings_from_args(argparse.Namespace(**overrides))
    address_url = settings.mqtt_url or f"mqtt://127.0.0.1:{settings.mqtt_port}"
    try:
        address = parse_mqtt_url(address_url)
    except MqttError as exc:
        fail(str(exc), EXIT_USAGE)
    address = address.with_login(settings.mqtt_username, secret_text(settings.mqtt_password))
    if settings.mqtt_ca_file is not None:
        address = address.with_tls(
            str(settings.mqtt_ca_file),
            path_text(settings.mqtt_cert_file),
            path_text(settings.mqtt_key_file),
        )
    return address


def reach_hint(address: BrokerAddress) -> str:
    """What to check when a client command finds no broker: the line's broker is
    the one ``up`` used, chosen by the same settings."""
    return (
        f"is the line running (factory-twin up) with its broker at {address}? Choose the "
        "broker with --mqtt-url or FACTORY_TWIN_MQTT_URL (external), or --mqtt-port or "
        "FACTORY_TWIN_MQTT_PORT (the embedded broker of up)"
    )


def line_topics(config: LineConfig) -> LineTopics:
    """The running line's topics, under the root ``up`` uses (``FACTORY_TWIN_TOPIC_ROOT``)."""
    from sensors.topics import LineTopics

    return LineTopics(
        site=config.line.site,
        area=config.line.area,
        line=config.line.id,
        root=current_settings().topic_root,
    )


class JsonProgress:
    """The part of tqdm's interface the commands use, reporting as JSON lines on
    stderr instead of drawing (``FACTORY_TWIN_PROGRESS=json``: the API's jobs)."""

    MIN_INTERVAL_S = 0.25
    # As tqdm's: a caller skips the work of reporting progress nobody sees.
    disable = False

    def __init__(self, total: float, description: str) -> None:
        self.total = total
        self.n: float = 0
        self.description = description
        self._last = 0.0
        self.refresh()

    def update(self, amount: float = 1) -> None:
        self.n += amount
        if time.monotonic() - self._last >= self.MIN_INTERVAL_S:
            self.refresh()

    def refresh(self) -> None:
        self._last = time.monotonic()
        line = {"progress": {"stage": self.description, "done": self.n, "total": self.total}}
        print(json.dumps(line), file=sys.stderr, flush=True)

    def close(self) -> None:
        self.refresh()


def open_bar(total: float, description: str, unit: str = "it") -> tqdm:
    """A tqdm bar on stderr, drawn on terminals only (``disable=None``); JSON lines
    instead under ``FACTORY_TWIN_PROGRESS=json``. The caller closes it."""
    # How this process reports, not a setting of the stack: read here, not in Settings.
    if os.environ.get("FACTORY_TWIN_PROGRESS") == "json":
        return JsonProgress(total, description)
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit=unit, file=sys.stderr, disable=None)


@contextmanager
def progress_bar(total: float, description: str, unit: str = "it") -> Iterator[tqdm]:
    """``open_bar`` for the length of a ``with`` block."""
    bar = open_bar(total, description, unit)
    try:
        yield bar
    finally:
        bar.close()


class BarProgress:
    """``models.training.TrainingProgress`` on the terminal: a bar a stage (JSON
    lines under ``FACTORY_TWIN_PROGRESS=json``), messages on stderr."""

    def __init__(self) -> None:
        self._name: str | None = None
        self._bar: tqdm | None = None

    def stage(self, name: str, done: float, total: float) -> None:
        if name != self._name or self._bar is None:
            self.close()
            self._name, self._bar = name, open_bar(total, name)
        bar = self._bar
        if bar.total != total:
            bar.total = total
        # update, not a refresh: the bar (or the JSON lines) keeps its own pace.
        bar.update(done - bar.n)

    def say(self, message: str) -> None:
        say(message)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        self._name, self._bar = None, None


def write_result(args: argparse.Namespace, result: Mapping[str, Any]) -> None:
    """``--result-json``: the run's outcome for a program (the API's jobs) to read."""
    if getattr(args, "result_json", None):
        Path(args.result_json).write_text(json.dumps(result, indent=2, default=str), "utf-8")


def report_dir(args: argparse.Namespace, command: str) -> Path:
    """``--report-dir``, else ``reports/<command>-<UTC time>``."""
    if args.report_dir:
        return Path(args.report_dir)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return Path("reports") / f"{command}-{stamp}"


def output_options(parser: argparse.ArgumentParser) -> None:
    """Where a model command writes: its report, its result for programs, the registry."""
    parser.add_argument("--report-dir", help="report directory (reports/<command>-<time>)")
    parser.add_argument(
        "--result-json", help="also write the outcome as JSON to this file (for programs)"
    )
    parser.add_argument(
        "--models-path",
        help="model registry (FACTORY_TWIN_MODELS_PATH, ~/.local/share/factory-twin/models)",
    )


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
