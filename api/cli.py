"""The ``factory-twin`` command line.

    factory-twin up        broker + live plant + ingest + API, until Ctrl-C
    factory-twin simulate  run a line as fast as possible and print its KPIs
    factory-twin schemas   write (or check) the contract's JSON Schema files

Exit codes: 0 success; 1 a runtime failure (broker unreachable, port taken);
2 bad usage or an invalid config, with a message that names the field.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError

from sensors.broker import port_is_free
from sensors.mqtt import MqttError
from twin import __version__
from twin.config import ConfigError, LineConfig, load_config
from twin.contract import json_schemas
from twin.simulate import SimulationReport, simulate

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2

log = logging.getLogger("factory_twin")


def _fail(message: str, code: int) -> NoReturn:
    print(f"factory-twin: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def _load(path: str | Path | None) -> LineConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        _fail(str(exc), EXIT_USAGE)


# -- simulate -----------------------------------------------------------------------
def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def _number(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _print_report(report: SimulationReport) -> None:
    kpis = report.line_kpis
    print(f"Line {report.line}: {report.hours:g} h simulated, seed {report.seed}")
    print(
        f"  produced {kpis.produced}  good {kpis.good}  scrap {kpis.scrap}  "
        f"WIP {kpis.work_in_process}"
    )
    print(
        f"  throughput {_number(kpis.throughput_per_h)} good/h   yield {_percent(kpis.yield_ratio)}"
    )
    print(
        f"  OEE {_percent(kpis.oee)} = availability {_percent(kpis.availability)} x "
        f"effectiveness {_percent(kpis.effectiveness)} x quality {_percent(kpis.quality_ratio)}"
        f"   (measured at bottleneck: {kpis.bottleneck})"
    )
    print()
    header = f"  {'station':<14}{'good':>7}{'scrap':>7}{'avail':>8}{'OEE':>8}"
    header += f"{'down':>8}{'starved':>9}{'blocked':>9}"
    print(header)
    for station in report.stations:
        s = station.kpis
        pbt = s.planned_busy_time_s or 1.0
        print(
            f"  {station.id:<14}{station.good:>7}{station.scrap:>7}"
            f"{_percent(s.availability):>8}{_percent(s.oee):>8}"
            f"{_percent(s.down_time_s / pbt):>8}{_percent(s.starved_time_s / pbt):>9}"
            f"{_percent(s.blocked_time_s / pbt):>9}"
        )


def _progress_bar(fraction: float) -> None:
    width = 30
    filled = int(fraction * width)
    sys.stderr.write(f"\r  simulating [{'#' * filled}{'.' * (width - filled)}] {fraction:4.0%}")
    if fraction >= 1:
        sys.stderr.write("\r" + " " * (width + 30) + "\r")
    sys.stderr.flush()


def cmd_simulate(args: argparse.Namespace) -> int:
    if not args.hours > 0:
        _fail(f"--hours must be > 0 (got {args.hours})", EXIT_USAGE)
    config = _load(args.config)
    progress = _progress_bar if sys.stderr.isatty() and not args.json else None
    report = simulate(config, hours=args.hours, seed=args.seed, progress=progress)
    if args.json:
        print(report.model_dump_json(indent=2))
    else:
        _print_report(report)
    return EXIT_OK


# -- up ---------------------------------------------------------------------------------
def _settings(args: argparse.Namespace) -> Any:
    from api.settings import Settings

    overrides = {
        name: getattr(args, name)
        for name in ("config", "speed", "seed", "api_host", "api_port", "mqtt_url", "mqtt_port")
        if getattr(args, name, None) is not None
    }
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        _fail(f"invalid setting (flag or FACTORY_TWIN_ variable): {problems}", EXIT_USAGE)


def _exit_cleanly(signum: int, frame: object) -> None:
    # uvicorn re-raises the signal after its graceful shutdown (which has
    # already stopped the stack); end with success instead of a traceback.
    raise SystemExit(EXIT_OK)


def cmd_up(args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app
    from api.runtime import Stack, StackOptions

    settings = _settings(args)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    config = _load(settings.config)
    if settings.api_port and not port_is_free(settings.api_host, settings.api_port):
        _fail(
            f"API port {settings.api_port} on {settings.api_host} is in use; "
            "pick another with --api-port",
            EXIT_RUNTIME,
        )
    stack = Stack(
        config,
        StackOptions(
            speed=settings.speed,
            seed=settings.seed,
            mqtt_url=settings.mqtt_url,
            mqtt_port=settings.mqtt_port,
            topic_root=settings.topic_root,
            max_payload_bytes=settings.max_payload_bytes,
        ),
    )
    try:
        stack.start()
    except MqttError as exc:
        _fail(str(exc), EXIT_RUNTIME)
    base = f"http://{settings.api_host}:{settings.api_port}"
    log.info(
        "factory-twin %s: line %s, broker %s %s, speed %gx",
        __version__,
        config.line.id,
        stack.broker_kind,
        stack.address,
        settings.speed,
    )
    log.info("API docs %s/docs | twin %s/twin | health %s/healthz", base, base, base)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(stack=stack),
            host=settings.api_host,
            port=settings.api_port,
            log_level=settings.log_level.lower(),
            timeout_graceful_shutdown=2,
        )
    )
    signal.signal(signal.SIGTERM, _exit_cleanly)
    signal.signal(signal.SIGINT, _exit_cleanly)
    try:
        server.run()
    finally:
        if stack.started:
            stack.stop()
    return EXIT_OK


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
            _fail(f"out of date in {out}: {', '.join(stale)}; run: make schemas", EXIT_RUNTIME)
        print(f"{len(files)} schema files in {out} are current")
        return EXIT_OK
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out / name).write_text(text, "utf-8")
    print(f"wrote {len(files)} schema files to {out}")
    return EXIT_OK


# -- parser -------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="factory-twin", description="Smart-factory digital twin on SimPy, MQTT and FastAPI."
    )
    parser.add_argument("--version", action="version", version=f"factory-twin {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sim = commands.add_parser("simulate", help="run a line as fast as possible, print KPIs")
    sim.add_argument("--config", help="line config YAML (default: the packaged demo line)")
    sim.add_argument("--hours", type=float, default=8.0, help="simulated hours (default 8)")
    sim.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    sim.add_argument("--json", action="store_true", help="print the report as JSON")
    sim.set_defaults(handler=cmd_simulate)

    up = commands.add_parser("up", help="run broker, live plant, twin and API until Ctrl-C")
    up.add_argument("--config", help="line config YAML [FACTORY_TWIN_CONFIG]")
    up.add_argument(
        "--speed", type=float, help="simulated seconds per wall second [FACTORY_TWIN_SPEED, 60]"
    )
    up.add_argument("--seed", type=int, help="random seed [FACTORY_TWIN_SEED, 42]")
    up.add_argument("--api-host", help="API bind address [FACTORY_TWIN_API_HOST, 127.0.0.1]")
    up.add_argument("--api-port", type=int, help="API port [FACTORY_TWIN_API_PORT, 8000]")
    up.add_argument(
        "--mqtt-url",
        help="external broker mqtt://host:port; unset = embedded broker [FACTORY_TWIN_MQTT_URL]",
    )
    up.add_argument(
        "--mqtt-port", type=int, help="embedded broker port [FACTORY_TWIN_MQTT_PORT, 1883]"
    )
    up.set_defaults(handler=cmd_up)

    schemas = commands.add_parser("schemas", help="write the contract's JSON Schema files")
    schemas.add_argument("--out", default="docs/schemas", help="directory (default docs/schemas)")
    schemas.add_argument("--check", action="store_true", help="fail if the files are stale")
    schemas.set_defaults(handler=cmd_schemas)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = args.handler
    code: int = handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
