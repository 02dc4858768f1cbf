"""The parser of ``factory-twin`` and its dispatch: each command module adds its
own subcommand (``add_parser``), ``main`` runs the one asked for. The console
script and ``python -m api.cli`` both land in ``main``."""

from __future__ import annotations

import argparse
import os
import sys

from api.children import end_with_parent
from api.cli import (
    command,
    learn,
    opcua_map,
    optimize,
    schemas,
    simulate,
    sweep,
    train,
    up,
    whatif,
)
from api.cli.arguments import OneLineParser
from api.cli.common import EXIT_OK
from twin import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="factory-twin", description="Smart-factory digital twin on SimPy, MQTT and FastAPI."
    )
    parser.add_argument("--version", action="version", version=f"factory-twin {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # In the order --help lists them.
    for module in (
        simulate,
        up,
        command,
        train,
        optimize,
        whatif,
        learn,
        sweep,
        schemas,
        opcua_map,
    ):
        module.add_parser(commands)
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
