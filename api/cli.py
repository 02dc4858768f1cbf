"""The ``factory-twin`` command line.

    factory-twin up        broker + live plant + ingest + API, until Ctrl-C (--site: many lines)
    factory-twin simulate  run a line as fast as possible and print its KPIs
    factory-twin cmd       send a command to the running line, print the answer
    factory-twin schemas   write (or check) the contract's JSON Schema files
    factory-twin train     fit, report and register the defect model and drift detector
    factory-twin tune      tune the defect model (time-aware CV), then train
    factory-twin optimize  recommend setpoints; --apply sends them to the running line
    factory-twin whatif    forecast KPIs from a snapshot of the twin, with and without changes
    factory-twin sweep     a design of experiments with replications (process pool or Dask)

Exit codes: 0 success; 1 a runtime failure (broker unreachable, port taken);
2 bad usage or an invalid config, with a message that names the field;
cmd only: 3 the line rejected the command, 4 no answer in time.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from api.children import end_with_parent
from api.cli_common import (
    EXIT_NO_ANSWER,
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_RUNTIME,
    EXIT_USAGE,
    broker_address,
    fail,
    line_topics,
    load_line,
    path_text,
    progress_bar,
    reach_hint,
    secret_text,
    settings_from_args,
)
from api.cli_types import (
    HOURS,
    PORT,
    REPLICATIONS,
    SEED,
    TIMEOUT_S,
    WARMUP_HOURS,
    WORKERS,
    OneLineParser,
    number,
)
from sensors.broker import port_is_free
from sensors.mqtt import MqttError
from twin import __version__
from twin.config.line import ConfigError, LineConfig
from twin.contract import json_schemas
from twin.experiments.experiment import (
    ABOVE_ONE_MARK,
    ABOVE_ONE_NOTE,
    ExperimentResult,
    experiment_field,
    interval_text,
    run_experiment,
)
from twin.history.store import StoreError

if TYPE_CHECKING:
    from sensors.command_client import Command

log = logging.getLogger("factory_twin")


# -- simulate -----------------------------------------------------------------------
def _percent(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value * 100:.1f}%" + (ABOVE_ONE_MARK if value > 1 else "")


def _number(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _with_ci(result: ExperimentResult, name: str, percent: bool = False, digits: int = 1) -> str:
    found = result.summary.get(name)
    if found is None:
        return "n/a"
    scale, unit = (100.0, "%") if percent else (1.0, "")
    text = f"{found.mean * scale:,.{digits}f}{unit}"
    if percent and found.mean > 1:
        text += ABOVE_ONE_MARK
    return text + interval_text(found, scale, unit, digits)


def _print_experiment(result: ExperimentResult) -> None:
    first = result.runs[0]
    currency = first.economics.currency
    replications = result.replications
    print(
        f"Line {first.line}: {result.hours:g} h simulated"
        + (f" after {result.warmup_hours:g} h warm-up" if result.warmup_hours else "")
        + f", seed {result.seed}, {replications} replication{'s' if replications > 1 else ''}"
        + f" (config {result.config_hash}, factory-twin {result.version})"
    )
    if replications > 1:
        print(f"  mean ± half-width of the {result.confidence:.0%} confidence interval")
    rows = [
        ("OEE", _with_ci(result, "oee", percent=True)),
        ("  availability", _with_ci(result, "availability", percent=True)),
        ("  effectiveness", _with_ci(result, "effectiveness", percent=True)),
        ("  quality ratio", _with_ci(result, "quality_ratio", percent=True)),
        ("NEE", _with_ci(result, "nee", percent=True)),
        ("throughput (good/h)", _with_ci(result, "throughput_per_h")),
        ("first-pass yield", _with_ci(result, "first_pass_yield", percent=True)),
        ("scrap ratio", _with_ci(result, "scrap_ratio", percent=True)),
        ("WIP (time-average)", _with_ci(result, "mean_wip")),
        ("cycle time (s)", _with_ci(result, "cycle_time_s", digits=0)),
        (f"cost per good part ({currency})", _with_ci(result, "cost_per_good_part", digits=2)),
        ("energy per good part (kWh)", _with_ci(result, "energy_per_good_part_kwh", digits=3)),
        (f"margin per hour ({currency})", _with_ci(result, "margin_per_hour", digits=0)),
    ]
    marked = False
    for label, value in rows:
        marked = marked or ABOVE_ONE_MARK in value
        print(f"  {label:<30}{value}")
    kpis = first.line_kpis
    print(
        f"  bottleneck (active periods): {kpis.bottleneck}; capacity constraint: {kpis.constraint}"
    )
    print()
    header = f"  {'station':<14}{'good':>7}{'scrap':>7}{'rework':>7}{'avail':>8}{'effect':>8}"
    header += f"{'OEE':>8}{'down':>8}{'setup':>8}{'starved':>9}{'blocked':>9}"
    print(header + ("   (replication 0)" if replications > 1 else ""))
    for station in first.stations:
        s = station.kpis
        pbt = s.planned_busy_time_s or 1.0
        ratios = [_percent(value) for value in (s.availability, s.effectiveness, s.oee)]
        marked = marked or any(ABOVE_ONE_MARK in text for text in ratios)
        print(
            f"  {station.id:<14}{station.good:>7}{station.scrap:>7}{station.rework:>7}"
            + "".join(f"{text:>8}" for text in ratios)
            + f"{_percent(s.down_time_s / pbt):>8}{_percent(s.setup_time_s / pbt):>8}"
            f"{_percent(s.starved_time_s / pbt):>9}{_percent(s.blocked_time_s / pbt):>9}"
        )
    if marked:
        print(f"  {ABOVE_ONE_NOTE}")
    print()
    print("  largest losses (replication 0):")
    for loss in [entry for entry in first.losses if entry.time_s > 0][:5]:
        print(
            f"    {loss.station:<12} {loss.category:<10} {loss.reason:<12}"
            f"{loss.time_s / 3600:>8.1f} h {loss.cost:>10,.0f} {currency}"
        )


def _print_csv(result: ExperimentResult) -> None:
    names = list(result.summary)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["row", "seed", *names])
    for index, run in enumerate(result.runs):
        values = []
        for name in names:
            value = experiment_field(run, name)
            values.append("" if value is None else repr(value))
        writer.writerow([f"replication {index}", result.replication_seeds[index], *values])
    for row, pick in (("mean", "mean"), ("ci_low", "low"), ("ci_high", "high")):
        cells = []
        for name in names:
            value = getattr(result.summary[name], pick)
            cells.append("" if value is None else repr(value))
        writer.writerow([row, "", *cells])


def _print_dry_run(config: LineConfig, source: str) -> None:
    print(f"{source}: valid (config {config.config_hash()})")
    release = config.release
    print(
        f"  line {config.line.id} ({config.line.name or 'unnamed'}), release {release.policy}"
        + (f", w = {release.wip_cap}" if release.wip_cap else "")
    )
    print(f"  products: {', '.join(product.id for product in config.products)}")
    for index, station in enumerate(config.stations):
        capacity = config.buffer_capacity(index)
        buffer = "unlimited" if capacity == float("inf") else f"{capacity:g}"
        print(
            f"  {index}. {station.id:<14} machines {station.machines}, "
            f"PRU {station.planned_runtime_per_unit_s():.1f} s, input buffer {buffer}"
        )
    print("resolved config:")
    print(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), end="")


def cmd_simulate(args: argparse.Namespace) -> int:
    config = load_line(args.config)
    if args.dry_run:
        _print_dry_run(config, args.config or "default line")
        return EXIT_OK
    # Counted in simulated hours after the warm-up, over all replications.
    total = args.hours * args.replications
    with progress_bar(total, "simulating", "h") as bar:

        def progress(fraction: float) -> None:
            bar.update(fraction * total - bar.n)

        result = run_experiment(
            config,
            hours=args.hours,
            seed=args.seed,
            replications=args.replications,
            warmup_hours=args.warmup,
            jobs=args.jobs,
            # A run nobody watches goes in one stretch, as before there was a bar.
            progress=None if bar.disable else progress,
        )
    if args.json:
        print(result.model_dump_json(indent=2))
    elif args.csv:
        _print_csv(result)
    else:
        _print_experiment(result)
    return EXIT_OK


# -- up ---------------------------------------------------------------------------------
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


def _stack_options(settings: Any) -> Any:
    from api.runtime import StackOptions

    return StackOptions(
        speed=settings.speed,
        seed=settings.seed,
        mqtt_url=settings.mqtt_url,
        mqtt_port=settings.mqtt_port,
        embedded_broker=settings.embedded_broker,
        topic_root=settings.topic_root,
        max_payload_bytes=settings.max_payload_bytes,
        persistent_session=settings.persistent_session,
        shared_group=settings.shared_group,
        qos_telemetry=settings.qos_telemetry,
        qos_events=settings.qos_events,
        qos_commands=settings.qos_commands,
        ingest_client_id=settings.ingest_client_id,
        mqtt_username=settings.mqtt_username,
        mqtt_password=secret_text(settings.mqtt_password),
        plant_mqtt_username=settings.plant_mqtt_username,
        plant_mqtt_password=secret_text(settings.plant_mqtt_password),
        mqtt_ca_file=path_text(settings.mqtt_ca_file),
        mqtt_cert_file=path_text(settings.mqtt_cert_file),
        mqtt_key_file=path_text(settings.mqtt_key_file),
        history_path=str(settings.history_path),
        history_retention_s=settings.history_retention_days * 86400,
        backfill_s=0.0 if settings.twin_only else settings.backfill_days * 86400,
        kpi_period_s=settings.kpi_period_s,
        scoring_period_s=settings.scoring_period_s,
        scoring_window_parts=settings.scoring_window_parts,
        models_path=path_text(settings.models_path),
        first_training=settings.first_training and not settings.twin_only,
        run_plant=not settings.twin_only,
        future_tolerance_s=settings.future_tolerance_s or None,
        max_stations=settings.twin_max_stations,
        lag_alarm_s=settings.lag_alarm_s,
        influx_url=settings.influx_url,
        influx_org=settings.influx_org,
        influx_bucket=settings.influx_bucket,
        influx_token=secret_text(settings.influx_token),
    )


def _load_site(path: Path) -> Any:
    from twin.config.site import load_site

    try:
        return load_site(path)
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)


def cmd_up(args: argparse.Namespace) -> int:
    from api.app import create_app
    from api.jobs import JobManager
    from api.runtime import Stack
    from api.site_runtime import SiteStack

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
    site = _load_site(settings.site) if settings.site is not None else None
    config = site.lines[0] if site is not None else load_line(settings.config)
    token, made_here = _api_token(settings)
    _check_broker_access(settings)
    if settings.api_port and not port_is_free(settings.api_host, settings.api_port):
        fail(
            f"API port {settings.api_port} on {settings.api_host} is in use; "
            "pick another with --api-port",
            EXIT_RUNTIME,
        )
    options = _stack_options(settings)
    runtime: Stack | SiteStack = (
        SiteStack(site, options) if site is not None else Stack(config, options)
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
            else f"line {config.line.id}",
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


# -- cmd --------------------------------------------------------------------------------
def _command(args: argparse.Namespace) -> Command:
    from sensors.command_client import Command

    action = args.action
    fields: dict[str, Any] = {}
    values = args.values
    expected = {"set_setpoint": ["setpoint", "value"], "set_speed": ["factor"]}.get(action, [])
    if len(values) != len(expected):
        usage = " ".join(name.upper() for name in expected) or "no arguments"
        fail(f"{action} takes {usage} (got {' '.join(values) or 'none'})", EXIT_USAGE)
    for name, text in zip(expected, values, strict=True):
        if name == "setpoint":
            fields[name] = text
            continue
        try:
            fields[name] = float(text)
        except ValueError:
            fail(f"{name} must be a number (got {text!r})", EXIT_USAGE)
        if not math.isfinite(fields[name]):
            fail(f"{name} must be a finite number (got {text!r})", EXIT_USAGE)
    target = None if args.target == "line" else args.target
    if args.command_id:
        return Command(target, action, fields, command_id=args.command_id)
    return Command(target, action, fields)


def cmd_command(args: argparse.Namespace) -> int:
    from sensors.command_client import send_commands

    config = load_line(args.config)
    topics = line_topics(config)
    command = _command(args)
    address = broker_address(args.mqtt_url, args.mqtt_port)
    try:
        answers = send_commands(address, topics, [command], timeout=args.timeout)
    except MqttError as exc:
        fail(f"{exc}; {reach_hint(address)}", EXIT_RUNTIME)
    ack = answers[command.command_id]
    if ack is None:
        fail(
            f"no answer on {topics.ack_for(command.target)} within {args.timeout:g} s: "
            f"{reach_hint(address)}; is --config the running line's?",
            EXIT_NO_ANSWER,
        )
    print(json.dumps(ack, indent=2))
    return EXIT_OK if ack.get("accepted") else EXIT_REJECTED


# -- schemas ------------------------------------------------------------------------
def _schema_files() -> dict[str, str]:
    return {
        f"{channel}.schema.json": json.dumps(schema, indent=2, sort_keys=True) + "\n"
        for channel, schema in json_schemas().items()
    }


def cmd_schemas(args: argparse.Namespace) -> int:
    out = Path(args.out)
    files = _schema_files()
    if args.check:
        stale = [
            name
            for name, text in files.items()
            if not (out / name).is_file() or (out / name).read_text("utf-8") != text
        ]
        if stale:
            fail(f"out of date in {out}: {', '.join(stale)}; run: make schemas", EXIT_RUNTIME)
        print(f"{len(files)} schema files in {out} are current")
        return EXIT_OK
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (out / name).write_text(text, "utf-8")
    except OSError as exc:
        fail(f"--out {out}: cannot write the schema files: {exc.strerror or exc}", EXIT_USAGE)
    print(f"wrote {len(files)} schema files to {out}")
    return EXIT_OK


# -- parser -------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="factory-twin", description="Smart-factory digital twin on SimPy, MQTT and FastAPI."
    )
    parser.add_argument("--version", action="version", version=f"factory-twin {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sim = commands.add_parser(
        "simulate", help="run a line as fast as possible, print KPIs with confidence intervals"
    )
    sim.add_argument("--config", help="line config YAML (default: the packaged demo line)")
    sim.add_argument("--hours", type=HOURS, default=8.0, help="simulated hours after warm-up (8)")
    sim.add_argument("--seed", type=SEED, default=42, help="random seed (42)")
    sim.add_argument(
        "--replications", type=REPLICATIONS, default=1, help="independent replications for CIs (1)"
    )
    sim.add_argument(
        "--warmup", type=WARMUP_HOURS, default=0.0, help="warm-up hours to discard (0)"
    )
    sim.add_argument("--jobs", type=WORKERS, default=1, help="replications run in parallel (1)")
    output = sim.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the full result as JSON")
    output.add_argument("--csv", action="store_true", help="print one CSV row per replication")
    sim.add_argument(
        "--dry-run", action="store_true", help="validate the config, print it resolved, exit"
    )
    sim.set_defaults(handler=cmd_simulate)

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
        "--twin-only",
        action="store_true",
        help="the twin of a line this process does not simulate: no plant, no backfill "
        "[FACTORY_TWIN_TWIN_ONLY]; give --mqtt-url of the line's broker",
    )
    up.set_defaults(handler=cmd_up)

    command = commands.add_parser(
        "cmd",
        help="send a command to the running line and print its answer",
        description="Examples: factory-twin cmd machining set_setpoint speed 1.2 | "
        "factory-twin cmd welding maintenance | factory-twin cmd line set_speed 120 | "
        "factory-twin cmd line pause. Exit codes: 0 accepted, 3 rejected, 4 no answer.",
    )
    command.add_argument("target", help="a station id, or 'line' for line commands")
    command.add_argument(
        "action",
        choices=["set_setpoint", "start", "stop", "maintenance", "pause", "resume", "set_speed"],
    )
    command.add_argument("values", nargs="*", help="set_setpoint: NAME VALUE; set_speed: FACTOR")
    command.add_argument("--config", help="line config YAML, for the topic names (default line)")
    command.add_argument("--mqtt-url", help="external broker [FACTORY_TWIN_MQTT_URL]")
    command.add_argument(
        "--mqtt-port",
        type=PORT,
        help="the embedded broker's port on 127.0.0.1 [FACTORY_TWIN_MQTT_PORT, 1883]",
    )
    command.add_argument("--command-id", help="command id (default: a new UUID)")
    command.add_argument(
        "--timeout", type=TIMEOUT_S, default=5.0, help="seconds to wait for the ack"
    )
    command.set_defaults(handler=cmd_command)

    from api.ml_cli import add_parsers
    from api.sweep_cli import add_parser as add_sweep
    from api.whatif_cli import add_parser as add_whatif

    add_parsers(commands)
    add_whatif(commands)
    add_sweep(commands)

    schemas = commands.add_parser("schemas", help="write the contract's JSON Schema files")
    schemas.add_argument("--out", default="docs/schemas", help="directory (default docs/schemas)")
    schemas.add_argument("--check", action="store_true", help="fail if the files are stale")
    schemas.set_defaults(handler=cmd_schemas)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    end_with_parent()
    handler = args.handler
    try:
        code: int = handler(args)
    except BrokenPipeError:
        # The reader went away (`factory-twin simulate --dry-run | head`): stop
        # quietly, and keep Python from complaining while it flushes stdout.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    return code


if __name__ == "__main__":
    sys.exit(main())
