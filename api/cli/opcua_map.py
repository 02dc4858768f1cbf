"""``factory-twin opcua-map``: the OPC UA source map of a line this project serves.

    factory-twin opcua-map --config line.yaml > map.yaml

The map says where ``up --opcua`` puts each station's state, counters, sensors
and setpoints, so that a twin elsewhere can follow the line over OPC UA alone
(``up --twin-only --opcua-source opc.tcp://host:4840/factory-twin/ --opcua-map
map.yaml``). For a line of your own, write the map by hand: docs/opcua.md.
"""

from __future__ import annotations

import argparse
from typing import Any

import yaml

from api.cli.common import EXIT_OK, load_line
from sensors.opcua.nodes import line_map


def cmd_opcua_map(args: argparse.Namespace) -> int:
    config = load_line(args.config)
    print(
        "# OPC UA source map of line "
        f"{config.line.site}/{config.line.area}/{config.line.id}, served by factory-twin "
        "up --opcua (docs/opcua.md)"
    )
    print(yaml.safe_dump(line_map(config), sort_keys=False, allow_unicode=True), end="")
    return EXIT_OK


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "opcua-map", help="print the OPC UA source map of a line served with up --opcua"
    )
    parser.add_argument("--config", help="line config YAML (default: the default line)")
    parser.set_defaults(handler=cmd_opcua_map)
