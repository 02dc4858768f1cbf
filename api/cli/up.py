"""``factory-twin up``: the broker, the live plant, the twin and the API, until Ctrl-C.

    factory-twin up --demo                   a local demo: makes an API token, shows it once
    factory-twin up --site site.yaml         several lines (docs/site.md)
    factory-twin up --twin-only --mqtt-url mqtt://line-broker:1883   a line simulated elsewhere,
                                             or a real one: without --config the twin finds
                                             the line on the broker and learns it (docs/learning.md)

Every flag has a ``FACTORY_TWIN_`` variable (``api.settings``); a flag wins.
Outside a demo it refuses to start without an API token and with an embedded
broker that would take anonymous clients (docs/security.md). It prints where
the dashboard is once the API answers, and stops cleanly on SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from api.cli.arguments import PORT, SEED, number
from api.cli.common import (
    EXIT_OK,
    EXIT_RUNTIME,
    EXIT_USAGE,
    broker_address,
    fail,
    load_line,
    path_text,
    secret_text,
    settings_from_args,
)
from sensors.broker import port_is_free
from sensors.mqtt import MqttError
from twin import __version__
from twin.config.line import ConfigError
from twin.history.store import StoreError

log = logging.getLogger("factory_twin")


def _api_token(settings: Any) -> tuple[str, bool]:
    """The token of the mutating endpoints, and whether it was made here (a demo
    without FACTORY_TWIN_API_TOKEN): then ``up`` shows it once, when it is up."""
    from api.security import TokenError, check_token, demo_token

    token = secret_text(settings.api_token)
    if settings.demo:
        return (token, False) if token else (demo_token(), True)
    try:
        return check_token(token), False
    except TokenError as error:
        fail(str(error), EXIT_USAGE)


def _check_broker_access(settings: Any) -> None:
    """Outside a local demo the embedded broker takes only logins: an anonymous
    broker lets anyone who reaches its port send the line commands."""
    if settings.demo or settings.mqtt_url or settings.allow_anonymous_mqtt:
        return
    if settings.opcua_source:
        return  # no broker: the line speaks OPC UA
    if settings.mqtt_username and settings.mqtt_password:
        return
    fail(
        "the embedded MQTT broker would take anonymous clients, who could command the "
        "line: set FACTORY_TWIN_MQTT_USERNAME and FACTORY_TWIN_MQTT_PASSWORD (the broker "
        "then takes only that login and the plant's), point --mqtt-url at your broker, "
        "run a local demo with --demo, or accept it with --allow-anonymous-mqtt "
        "(docs/security.md)",
        EXIT_USAGE,
    )


def _check_opcua_access(settings: Any) -> None:
    """Outside a local demo the OPC UA server takes one login over an encrypted
    channel: an anonymous one would let anyone who reaches its port command the line."""
    if not settings.opcua:
        return
    if settings.twin_only:
        fail("--opcua serves a line this process simulates: drop --twin-only", EXIT_USAGE)
    if settings.demo or (settings.opcua_username and settings.opcua_password):
        return
    fail(
        "--opcua outside --demo needs a login: set FACTORY_TWIN_OPCUA_USERNAME and "
        "FACTORY_TWIN_OPCUA_PASSWORD (clients then connect with Basic256Sha256 sign and "
        "encrypt; docs/opcua.md), or run a local demo with --demo",
        EXIT_USAGE,
    )


def _opcua_source_line(settings: Any) -> tuple[str, str, str] | None:
    """The line an OPC UA source's map names (site, area, line), its map checked
    first; None without a source."""
    if settings.opcua_source is None and settings.opcua_map is None:
        return None
    if settings.opcua_source is None or settings.opcua_map is None:
        fail(
            "an OPC UA source needs both --opcua-source (the line's server, opc.tcp://host:port) "
            "and --opcua-map (which node is what; docs/opcua.md)",
            EXIT_USAGE,
        )
    if not settings.twin_only:
        fail("--opcua-source is the twin of a line elsewhere: add --twin-only", EXIT_USAGE)
    if settings.site is not None:
        fail("--opcua-source mirrors one line: give no --site", EXIT_USAGE)
    from sensors.opcua.source_map import load_map

    try:
        line_map = load_map(settings.opcua_map)
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    return line_map.line.site, line_map.line.area, line_map.line.id


def ready_banner(base: str, token: str | None) -> str:
    """What ``up`` prints last, once the API answers: where to go and, in a demo
    that made one, the token, framed so that it stands out from the logs."""
    lines = [f"factory-twin is up: {base}/ (dashboard), {base}/docs (API)"]
    if token is not None:
        lines += [
            "API token for commands and training (shown once, keep it):",
            f"  {token}",
            f"dashboard with the token: {base}/#token={token}",
        ]
    width = max(len(line) for line in lines)
    rule = "+" + "-" * (width + 2) + "+"
    return "\n".join([rule, *(f"| {line.ljust(width)} |" for line in lines), rule])


def _exit_cleanly(signum: int, frame: object) -> None:
    # uvicorn re-raises the signal after its graceful shutdown (which has
    # already stopped the stack); end with success instead of a traceback.
    raise SystemExit(EXIT_OK)


def serve(
    app: Any,
    stack: Any,
    *,
    host: str,
    port: int,
    log_level: str = "info",
    access_log: bool = True,
    on_started: Callable[[], None] | None = None,
) -> None:
    """Serve the app with uvicorn until SIGINT or SIGTERM; the stack is stopped
    either way (the app's lifespan stops it first, on a clean shutdown).
    ``on_started`` runs once the server listens, after its start-up logs."""
    import uvicorn

    class _Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            # Before uvicorn waits for open connections: end the live streams.
            before_exit = getattr(getattr(app, "state", None), "before_exit", None)
            if before_exit is not None:
                before_exit()
            super().handle_exit(sig, frame)

    server = _Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=log_level.lower(),
            access_log=access_log,
            timeout_graceful_shutdown=2,
        )
    )
    signal.signal(signal.SIGTERM, _exit_cleanly)
    signal.signal(signal.SIGINT, _exit_cleanly)
    if on_started is not None:

        def announce() -> None:
            while not server.started and not server.should_exit:
                time.sleep(0.05)
            if server.started:
                on_started()

        threading.Thread(target=announce, name="announce", daemon=True).start()
    try:
        server.run()
    finally:
        if stack.started:
            stack.stop()


def _load_site(path: Path) -> Any:
    from twin.config.site import load_site

    try:
        return load_site(path)
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)


def _line_ref(settings: Any) -> tuple[str, str, str]:
    """The line a twin-only twin without a line file mirrors: ``--line``, else the
    one line whose retained status the broker holds (it waits ``line_wait_s`` for
    one to announce itself)."""
    if settings.line is not None:
        site, area, line = settings.line.split("/")
        return site, area, line
    if not settings.mqtt_url:
        fail(
            "a twin without a line file finds its line on the line's broker: give "
            "--mqtt-url, or name the line with --line site/area/line",
            EXIT_USAGE,
        )
    from sensors.discovery import find_lines

    address = broker_address(settings.mqtt_url)
    deadline = time.monotonic() + settings.line_wait_s
    found: list[Any] = []
    while not found:
        wait_s = min(10.0, max(0.1, deadline - time.monotonic()))
        try:
            found = find_lines(address, root=settings.topic_root, wait_s=wait_s)
        except MqttError as exc:
            fail(f"{exc}; is the line's broker running?", EXIT_RUNTIME)
        if found or time.monotonic() >= deadline:
            break
        log.info(
            "waiting for a line to announce itself on %s (%s/v1/+/+/+/status)",
            address,
            settings.topic_root,
        )
    if not found:
        fail(
            f"no line announced itself on {address} under {settings.topic_root}/v1 within "
            f"{settings.line_wait_s:g} s (FACTORY_TWIN_LINE_WAIT_S): start the line, or "
            "name it with --line site/area/line",
            EXIT_RUNTIME,
        )
    if len(found) > 1:
        fail(
            f"{len(found)} lines on {address}: "
            + ", ".join(f"{line.ref} ({line.status or 'unreadable status'})" for line in found)
            + "; choose one with --line site/area/line",
            EXIT_USAGE,
        )
    chosen = found[0]
    log.info(
        "mirroring line %s (%s, %s), found on the broker, without a line file",
        chosen.ref,
        chosen.name or "no name given",
        chosen.status,
    )
    return chosen.site, chosen.area, chosen.line


def cmd_up(args: argparse.Namespace) -> int:
    from api.app import create_app
    from api.jobs import JobManager
    from api.runtime.line import Stack
    from api.runtime.options import StackOptions
    from api.runtime.protocol import Runtime
    from api.runtime.site import SiteStack

    settings = settings_from_args(args)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    if settings.site is not None and settings.config is not None:
        fail(
            "give a line (--config, FACTORY_TWIN_CONFIG) or a site (--site, FACTORY_TWIN_SITE), "
            "not both",
            EXIT_USAGE,
        )
    if settings.line is not None and not (settings.twin_only and settings.config is None):
        fail(
            "--line (FACTORY_TWIN_LINE) names the line of a twin without a line file: "
            "use it with --twin-only and without --config",
            EXIT_USAGE,
        )
    site = _load_site(settings.site) if settings.site is not None else None
    # A twin-only twin without a line file learns its line from the stream.
    unfiled = settings.twin_only and site is None and settings.config is None
    # The line file is checked first: a bad one is named before anything else.
    config = site.lines[0] if site is not None else None if unfiled else load_line(settings.config)
    token, made_here = _api_token(settings)
    _check_broker_access(settings)
    _check_opcua_access(settings)
    if settings.opcua and settings.site is not None:
        fail("--opcua serves one line: give --config, not --site", EXIT_USAGE)
    if settings.opcua and not port_is_free(settings.opcua_host, settings.opcua_port):
        fail(
            f"OPC UA port {settings.opcua_port} on {settings.opcua_host} is in use; "
            "pick another with --opcua-port",
            EXIT_RUNTIME,
        )
    if unfiled and settings.source == "sparkplug" and settings.line is None:
        # The line is found by its retained JSON status, which Sparkplug B does not keep.
        fail(
            "a twin fed over Sparkplug B without a line file needs the line named: "
            "--line site/area/line (docs/sparkplug.md)",
            EXIT_USAGE,
        )
    opcua_line = _opcua_source_line(settings)
    if opcua_line is not None:
        line_ref = opcua_line if unfiled else None
    else:
        line_ref = _line_ref(settings) if unfiled else None
    if settings.api_port and not port_is_free(settings.api_host, settings.api_port):
        fail(
            f"API port {settings.api_port} on {settings.api_host} is in use; "
            "pick another with --api-port",
            EXIT_RUNTIME,
        )
    options = StackOptions.from_settings(settings)
    runtime: Runtime = (
        SiteStack(site, options) if site is not None else Stack(config, options, line_ref=line_ref)
    )
    # A signal while the stack starts stops what has started (the backfill's
    # children included) and exits quietly, as one while serving does.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    signal.signal(signal.SIGINT, _exit_cleanly)
    # The backfill begins once the API is up (the app's lifespan releases it).
    runtime.defer_backfill()
    try:
        runtime.start()
    except MqttError as exc:
        hint = (
            "; is it running? Leave --mqtt-url and FACTORY_TWIN_MQTT_URL unset to use the "
            "embedded broker"
            if settings.mqtt_url
            else ""
        )
        fail(f"{exc}{hint}", EXIT_RUNTIME)
    except StoreError as exc:
        fail(str(exc), EXIT_RUNTIME)
    # From here a signal (even before the server takes over) still stops the stack:
    # the live line, the backfill's processes, the store.
    try:
        base = f"http://{settings.api_host}:{settings.api_port}"
        log.info(
            "factory-twin %s: %s, broker %s %s, speed asked %gx",
            __version__,
            f"site {site.site.id} with lines {', '.join(site.line_ids)}"
            if site is not None
            else f"line {runtime.first.line_id}"
            + ("" if config is not None else " (no line file: learnt from the stream)"),
            runtime.broker_kind,
            runtime.address,
            settings.speed,
        )
        log.info("API docs %s/docs | twin %s/twin | health %s/healthz", base, base, base)
        if site is not None:
            log.info("site %s/site | a line %s/lines/{line_id}", base, base)
        app = create_app(
            stack=runtime if isinstance(runtime, Stack) else None,
            site=runtime if isinstance(runtime, SiteStack) else None,
            api_token=token,
            cors_origins=settings.cors_origins,
            max_request_bytes=settings.max_request_bytes,
            models_path=path_text(settings.models_path),
            jobs=JobManager(
                settings.jobs_path,
                max_running=settings.jobs_max_running,
                timeout_s=settings.jobs_timeout_s,
            ),
        )
        shown = f"http://{'127.0.0.1' if settings.api_host == '0.0.0.0' else settings.api_host}"  # noqa: S104
        shown += f":{settings.api_port}"
        serve(
            app,
            runtime,
            host=settings.api_host,
            port=settings.api_port,
            log_level=settings.log_level,
            on_started=lambda: print(ready_banner(shown, token if made_here else None), flush=True),
        )
    finally:
        if runtime.started:
            runtime.stop()
    return EXIT_OK


def add_parser(commands: Any) -> None:
    up = commands.add_parser("up", help="run broker, live plant, twin and API until Ctrl-C")
    up.add_argument("--config", help="line config YAML [FACTORY_TWIN_CONFIG]")
    up.add_argument(
        "--site",
        help="site config YAML: several lines, shared resources [FACTORY_TWIN_SITE]; "
        "see docs/site.md",
    )
    up.add_argument(
        "--speed",
        type=number(0, 100_000, low_open=True),
        help="simulated seconds per wall second [FACTORY_TWIN_SPEED, 60]",
    )
    up.add_argument("--seed", type=SEED, help="random seed [FACTORY_TWIN_SEED, 42]")
    up.add_argument("--api-host", help="API bind address [FACTORY_TWIN_API_HOST, 127.0.0.1]")
    up.add_argument("--api-port", type=PORT, help="API port [FACTORY_TWIN_API_PORT, 8000]")
    up.add_argument(
        "--mqtt-url",
        help="external broker mqtt://host:port; unset = embedded broker [FACTORY_TWIN_MQTT_URL]",
    )
    up.add_argument(
        "--mqtt-port", type=PORT, help="embedded broker port [FACTORY_TWIN_MQTT_PORT, 1883]"
    )
    up.add_argument(
        "--history-path",
        help="embedded history store, an SQLite file [FACTORY_TWIN_HISTORY_PATH, "
        "~/.local/state/factory-twin/history.sqlite3]",
    )
    backfill_group = up.add_mutually_exclusive_group()
    backfill_group.add_argument(
        "--backfill-days",
        type=number(0, 365),
        help="simulated history to write before going live [FACTORY_TWIN_BACKFILL_DAYS, 7]",
    )
    backfill_group.add_argument(
        "--no-backfill", action="store_true", help="go live at once, with no imported history"
    )
    up.add_argument(
        "--demo",
        action="store_true",
        help="local demo: make an API token if none is set and print it once "
        "[FACTORY_TWIN_DEMO] (make run)",
    )
    up.add_argument(
        "--allow-anonymous-mqtt",
        action="store_true",
        help="outside --demo, let the embedded broker take clients without a login "
        "[FACTORY_TWIN_ALLOW_ANONYMOUS_MQTT]; docs/security.md",
    )
    up.add_argument(
        "--opcua",
        action="store_true",
        help="serve the live line as an OPC UA server too [FACTORY_TWIN_OPCUA]; anonymous "
        "in --demo, otherwise FACTORY_TWIN_OPCUA_USERNAME and _PASSWORD with Basic256Sha256 "
        "sign and encrypt; docs/opcua.md",
    )
    up.add_argument(
        "--opcua-port", type=PORT, help="OPC UA server port [FACTORY_TWIN_OPCUA_PORT, 4840]"
    )
    up.add_argument(
        "--sparkplug",
        action="store_true",
        help="publish the live line as a Sparkplug B edge node too, beside the JSON tree "
        "[FACTORY_TWIN_SPARKPLUG]; docs/sparkplug.md",
    )
    up.add_argument(
        "--source",
        choices=("json", "sparkplug"),
        help="what the twin is fed from: the JSON tree or the line's Sparkplug B edge node "
        "[FACTORY_TWIN_SOURCE, json]",
    )
    up.add_argument(
        "--opcua-source",
        help="with --twin-only: the OPC UA server of the line to mirror, opc.tcp://host:port "
        "[FACTORY_TWIN_OPCUA_SOURCE]; docs/opcua.md",
    )
    up.add_argument(
        "--opcua-map",
        help="which node of --opcua-source is what, per station (YAML) [FACTORY_TWIN_OPCUA_MAP]",
    )
    up.add_argument(
        "--twin-only",
        action="store_true",
        help="the twin of a line this process does not simulate: no plant, no backfill "
        "[FACTORY_TWIN_TWIN_ONLY]; give --mqtt-url of the line's broker. Without --config "
        "it finds the line there and learns it from the stream (docs/learning.md)",
    )
    up.add_argument(
        "--line",
        help="site/area/line a --twin-only twin without --config mirrors; unset: the one "
        "line on the broker [FACTORY_TWIN_LINE]",
    )
    up.set_defaults(handler=cmd_up)
