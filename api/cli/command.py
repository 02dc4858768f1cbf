"""``factory-twin cmd``: send one command to the running line and print its answer.

    factory-twin cmd machining set_setpoint speed 1.2
    factory-twin cmd line pause

The broker is the one ``up`` uses, found by the same settings
(``common.broker_address``). Exit codes: 0 accepted, 1 no broker, 2 bad
usage, 3 the line rejected the command, 4 no answer in time.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import TYPE_CHECKING, Any

from api.cli.arguments import PORT, TIMEOUT_S
from api.cli.common import (
    EXIT_NO_ANSWER,
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_RUNTIME,
    EXIT_USAGE,
    broker_address,
    fail,
    line_topics,
    load_line,
    reach_hint,
)
from sensors.mqtt import MqttError

if TYPE_CHECKING:
    from sensors.command_client import Command


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


def add_parser(commands: Any) -> None:
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
