"""docs/mqtt.md stays true: every JSON example validates against its shipped schema.

Each ```json block in the document must sit right below its topic, written as
inline code on a line of its own. The topic's last level picks the schema
(``status`` for the line topic, otherwise the station channel).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from sensors.codec import decode
from sensors.topics import LineTopics
from twin.config.line import load_config

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "mqtt.md"
SCHEMAS = REPO / "docs" / "schemas"
CHANNELS = ("telemetry", "event", "state", "status", "cmd", "cmd/ack", "alarms")
SCHEMA_FILES = {"cmd/ack": "cmd_ack"}

# A topic in inline code on its own line, then (after blank lines) a ```json block.
EXAMPLE = re.compile(
    r"^`(?P<topic>[^`\s]+)`[ \t]*\n(?:[ \t]*\n)*```json[ \t]*\n(?P<body>.*?)^```[ \t]*$",
    flags=re.MULTILINE | re.DOTALL,
)
JSON_BLOCK = re.compile(r"^```json[ \t]*$", flags=re.MULTILINE)


def _examples() -> list[tuple[str, str]]:
    text = DOC.read_text("utf-8")
    return [(match["topic"], match["body"]) for match in EXAMPLE.finditer(text)]


EXAMPLES = _examples()


def _channel(topic: str) -> str:
    if topic.endswith("/cmd/ack"):
        return "cmd/ack"
    if "/alarms/" in topic:
        return "alarms"
    return topic.rsplit("/", 1)[-1]


def _validator(channel: str) -> Draft202012Validator:
    name = SCHEMA_FILES.get(channel, channel)
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text("utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _kind(channel: str, message: dict[str, Any]) -> str:
    if channel == "event":
        return f"event:{message['event']}"
    if channel == "status":
        return f"status:{message['status']}"
    if channel == "cmd":
        return f"cmd:{message['action']}"
    return channel


def test_every_json_block_has_a_topic() -> None:
    text = DOC.read_text("utf-8")
    assert len(EXAMPLES) == len(JSON_BLOCK.findall(text)), (
        "every ```json block in docs/mqtt.md needs its topic as inline code just above it"
    )


@pytest.mark.parametrize(
    ("topic", "body"),
    EXAMPLES,
    ids=[
        f"{index}-{_channel(topic).replace('/', '-')}" for index, (topic, _) in enumerate(EXAMPLES)
    ],
)
def test_example_matches_its_schema_and_decodes(topic: str, body: str) -> None:
    channel = _channel(topic)
    assert channel in CHANNELS, f"{topic}: no payload type for channel {channel!r}"
    line = load_config().line
    parsed = LineTopics(site=line.site, area=line.area, line=line.id).parse(topic)
    assert parsed is not None, f"{topic} is not a topic of the default line"
    assert parsed.channel == channel

    message = json.loads(body)
    errors = list(_validator(channel).iter_errors(message))
    assert not errors, f"{topic}: " + "; ".join(error.message for error in errors)
    decode(channel, body.encode())


def test_every_payload_type_has_an_example() -> None:
    kinds = {
        _kind(_channel(topic), json.loads(body))
        for topic, body in EXAMPLES
        if _channel(topic) in CHANNELS
    }
    expected = {
        "telemetry",
        "event:part_started",
        "event:part_finished",
        "event:state_changed",
        "state",
        "status:online",
        "status:offline",
        "cmd:set_setpoint",
        "cmd/ack",
        "alarms",
    }
    assert expected <= kinds, f"docs/mqtt.md lacks examples of {sorted(expected - kinds)}"
