from __future__ import annotations

import pytest

from sensors.topics import LineTopics, ParsedTopic

TOPICS = LineTopics(site="plant-a", area="fabrication", line="line1")


def test_isa95_versioned_tree() -> None:
    assert TOPICS.station("welding", "telemetry") == (
        "factory/v1/plant-a/fabrication/line1/welding/telemetry"
    )
    assert TOPICS.status == "factory/v1/plant-a/fabrication/line1/status"
    assert TOPICS.subscription == "factory/v1/plant-a/fabrication/line1/#"


@pytest.mark.parametrize("channel", ["telemetry", "event", "state", "cmd", "cmd/ack"])
def test_parse_round_trips(channel: str) -> None:
    topic = TOPICS.station("painting", channel)  # type: ignore[arg-type]
    assert TOPICS.parse(topic) == ParsedTopic("painting", channel)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "topic",
    [
        "factory/v1/plant-a/fabrication/line2/welding/event",
        "factory/v2/plant-a/fabrication/line1/welding/event",
        "factory/v1/plant-a/fabrication/line1/welding/bogus",
        "factory/v1/plant-a/fabrication/line1//event",
        "factory/v1/plant-a/fabrication/line1",
    ],
)
def test_foreign_topics_are_not_ours(topic: str) -> None:
    assert TOPICS.parse(topic) is None


def test_status_is_a_line_topic() -> None:
    assert TOPICS.parse(TOPICS.status) == ParsedTopic(None, "status")
    with pytest.raises(ValueError, match="line topic"):
        TOPICS.station("x", "status")
