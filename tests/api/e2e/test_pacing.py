"""A line driven faster than its pipeline carries is slowed, and says so.

The simulated plant runs at the highest speed ``up`` accepts (100,000x): no
pipeline carries that (the bottling line publishes about 48 messages a line
second, so 4.8 million a second). The line must lower the speed in force below
the speed asked and show both (``/twin``, ``/healthz``, ``/metrics``); a
``set_speed`` to the API's highest speed (1,000x) is accepted and its answer says
which speed is in force; and nothing is dropped on the way: the publisher drops
nothing, the ingest counts no gap, and every message the plant handed over
reaches the twin. Once on Debian's mosquitto, once on the embedded broker; on two
line templates.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from helpers import get_free_port, wait_until

from api.app import create_app
from api.runtime.line import Stack
from api.runtime.options import StackOptions
from twin.config.line import load_config
from twin.contract import SetSpeed
from twin.sim.live import MAX_SPEED

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
TEMPLATES = {
    "default": ROOT / "twin" / "lines" / "default.yaml",
    "bottling": ROOT / "examples" / "lines" / "bottling.yaml",
}
API_MAX_SPEED = SetSpeed.model_fields["factor"].metadata[1].le
TOKEN = "pacing-test-token-0123456789"


@pytest.fixture(params=["mosquitto", "embedded"])
def broker_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "mosquitto":
        url: str = request.getfixturevalue("mosquitto").url
        return url
    return None


@pytest.fixture(params=sorted(TEMPLATES))
def live(request: pytest.FixtureRequest, broker_url: str | None) -> Iterator[TestClient]:
    options = StackOptions(
        speed=MAX_SPEED,
        mqtt_url=broker_url,
        mqtt_port=get_free_port(),
        scoring_period_s=0,
        first_training=False,
        persistent_session=False,
    )
    stack = Stack(load_config(TEMPLATES[request.param]), options)
    with TestClient(create_app(stack=stack, api_token=TOKEN)) as client:
        client.template = request.param  # type: ignore[attr-defined]
        yield client


def test_a_line_faster_than_its_pipeline_is_slowed_and_says_so(live: TestClient) -> None:
    stack: Stack = live.app.state.stack  # type: ignore[attr-defined]

    def slowed() -> bool:
        view = live.get("/twin").json()
        return view["speed_asked"] == MAX_SPEED and (view["speed_factor"] or MAX_SPEED) < MAX_SPEED

    assert wait_until(slowed, 60)
    plant = live.get("/healthz").json()["plant"]
    assert plant["speed_asked"] == MAX_SPEED
    assert plant["speed_in_force"] < MAX_SPEED
    metrics = live.get("/metrics").text
    assert "factory_twin_line_speed_asked_factor{" in metrics
    assert "factory_twin_plant_speed_in_force_factor{" in metrics

    bottling = live.template == "bottling"  # type: ignore[attr-defined]
    if bottling:
        # 48 messages a line second: 1,000x is beyond any pipeline here, so the pace
        # comes below it.
        assert wait_until(lambda: live.get("/twin").json()["speed_factor"] < API_MAX_SPEED, 60)

    # The API's highest speed is accepted; the answer says which speed is in force.
    answer = live.post(
        "/line/commands",
        json={"action": "set_speed", "factor": API_MAX_SPEED, "timeout_s": 30},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert answer.status_code == 200, answer.text
    ack = answer.json()
    assert ack["accepted"]
    assert ack["speed_asked"] == API_MAX_SPEED
    assert ack["speed_factor"] is not None
    assert ack["speed_factor"] <= API_MAX_SPEED
    if ack["speed_factor"] < API_MAX_SPEED:
        assert f"{ack['speed_factor']:g}x in force" in ack["reason"]
    if bottling:
        assert ack["speed_factor"] < API_MAX_SPEED

    def says_new_speed() -> bool:
        return live.get("/twin").json()["speed_asked"] == API_MAX_SPEED

    assert wait_until(says_new_speed, 30)

    # Nothing dropped on the way: stop the line, let it flush, and count.
    stack.stop_plant(flush_timeout=120)
    publisher, ingest = stack.publisher, stack.ingest
    assert publisher is not None
    assert ingest is not None
    handed_over = sum(publisher.published.values())
    assert wait_until(lambda: ingest.stats.received >= handed_over, 120), (
        ingest.stats.received,
        handed_over,
    )
    assert dict(publisher.dropped) == {}
    health = live.get("/healthz").json()
    assert health["ingest"]["gaps"] == 0
    # Memory stayed within the outbox bound all along (the publisher waits at it).
    assert publisher.health()["outbox_size"] <= publisher.max_outbox


def test_a_command_ack_does_not_wait_behind_the_plants_outbox() -> None:
    """The plant's connection stops writing (its outbox fills, as behind a slow
    pipeline): a set_speed is still answered, since commands and acks have a
    connection of their own. Queued behind the outbox, the ack would never come."""
    options = StackOptions(
        speed=60,
        mqtt_port=get_free_port(),
        scoring_period_s=0,
        first_training=False,
        persistent_session=False,
    )
    stack = Stack(load_config(TEMPLATES["default"]), options)
    with TestClient(create_app(stack=stack, api_token=TOKEN)) as client:
        assert wait_until(lambda: client.get("/twin").json()["status"] == "online", 60)
        publisher = stack.publisher
        assert publisher is not None
        # No acknowledgement of the broker is read: once paho has as many QoS 1 messages
        # in flight as it may, the rest wait in its outbox.
        publisher.client.loop_stop()
        try:
            assert wait_until(lambda: publisher.health()["outbox_size"] > 50, 60)
            answer = client.post(
                "/line/commands",
                json={"action": "set_speed", "factor": 120, "timeout_s": 30},
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            assert answer.status_code == 200, answer.text
            ack = answer.json()
            assert ack["accepted"]
            assert ack["speed_asked"] == 120
            # Still queued: the ack overtook the plant's messages.
            assert publisher.health()["outbox_size"] > 50
        finally:
            publisher.client.loop_start()
