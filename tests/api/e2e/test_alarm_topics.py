"""The twin's alarms on the line's MQTT tree, through Debian's mosquitto: a standing
alarm is retained for a subscriber that comes later, each change replaces it, a
normal alarm is removed, and the twin's own ingest takes none of it for the line's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from helpers import Mosquitto, Recorder, wait_until
from jsonschema import Draft202012Validator

from api.app import create_app
from api.deps import every_line
from api.routes.alarms import book_of
from api.runtime.line import Stack
from api.runtime.options import StackOptions
from twin.alarms.lifecycle import AlarmKey
from twin.config.line import load_config

pytestmark = [pytest.mark.integration]

REPO = Path(__file__).resolve().parents[3]
SCHEMA = json.loads((REPO / "docs" / "schemas" / "alarms.schema.json").read_text("utf-8"))
KEY = AlarmKey("offset", "welding", "temperature_c")


def test_standing_alarms_are_retained_on_the_tree_and_removed_once_normal(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    config = load_config()
    stack = Stack(
        config,
        StackOptions(
            mqtt_url=mosquitto.url,
            run_plant=False,
            first_training=False,
            history_path=str(tmp_path / "history.sqlite3"),
        ),
    )
    with TestClient(create_app(stack=stack)) as client:
        state = client.app.state  # type: ignore[attr-defined]
        book = book_of(state, every_line(state)[0])
        topic = stack.topics.alarm(KEY.kind, KEY.station, KEY.sensor)
        assert topic == "factory/v1/plant-a/fabrication/line1/alarms/offset/welding/temperature_c"
        book.record(
            book.book.condition(
                KEY, True, 10.0, priority="high", message="hot", evidence={"sigmas": 40.0}
            )
        )
        book.record(book.book.acknowledge(KEY.id, 11.0, "anna"))

        # A subscriber that comes later gets the alarm as it stands: acknowledged.
        late = Recorder(mosquitto.url, stack.topics.alarms)
        try:
            assert wait_until(lambda: bool(late.snapshot()), timeout=10)
            [(seen_topic, payload, retained)] = late.snapshot()
            assert (seen_topic, retained) == (topic, True)
            message = json.loads(payload)
            assert not list(Draft202012Validator(SCHEMA).iter_errors(message))
            assert (message["state"], message["state_code"], message["priority"]) == (
                "acknowledged",
                "ACKED",
                "high",
            )
            assert message["evidence"] == {"sigmas": 40.0}
            assert message["seq"] == 1  # the second message on that topic

            # Cleared: normal, so the retained alarm is removed (an empty message).
            book.record(book.book.condition(KEY, False, 12.0))
            assert wait_until(lambda: len(late.snapshot()) == 2, timeout=10)
            assert late.snapshot()[1][:2] == (topic, b"")
        finally:
            late.client.disconnect()
            late.client.loop_stop()
        fresh = Recorder(mosquitto.url, stack.topics.alarms)
        try:
            # Nothing left on the broker: a new subscriber gets no alarm (after a
            # message on a live topic, so that "nothing" is not just "not yet").
            book.record(
                book.book.condition(AlarmKey("lag"), True, 13.0, priority="medium", message="x")
            )
            assert wait_until(lambda: bool(fresh.snapshot()), timeout=10)
            assert [t for t, _, _ in fresh.snapshot()] == [stack.topics.alarm("lag", None, None)]
        finally:
            fresh.client.disconnect()
            fresh.client.loop_stop()
        assert stack.ingest is not None
        health = stack.ingest.health()
        assert health["unknown_topic"] == 0
        assert sum(health["malformed"].values()) == 0
        assert state.alarm_topics["line1"].health()["refused"] == 0
