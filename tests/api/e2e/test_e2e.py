"""End to end: broker, live plant, ingest and API on free ports.

The part counts the API reports must equal what the plant published, with no
QoS 1 event lost: once against Debian's mosquitto, once against the embedded
broker that the stack starts itself.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from helpers import get_free_port, serve_in_thread, wait_until

from api.app import create_app
from api.runtime.line import Stack
from api.runtime.options import StackOptions
from twin.config.line import load_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(params=["mosquitto", "embedded"])
def options(request: pytest.FixtureRequest) -> StackOptions:
    if request.param == "mosquitto":
        broker = request.getfixturevalue("mosquitto")
        return StackOptions(speed=600, seed=5, mqtt_url=broker.url)
    return StackOptions(speed=600, seed=5, mqtt_port=get_free_port())


@pytest.fixture
def running(options: StackOptions) -> Iterator[tuple[Stack, httpx.Client]]:
    stack = Stack(load_config(), options)
    port = get_free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(stack=stack), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    assert wait_until(lambda: server.started, timeout=20), "API did not start"
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        yield stack, client
    server.should_exit = True
    thread.join(10)
    assert not thread.is_alive()
    assert not stack.started


def kpis(client: httpx.Client) -> dict[str, Any]:
    response = client.get("/kpis")
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def test_api_counts_equal_what_the_plant_published(
    running: tuple[Stack, httpx.Client],
) -> None:
    stack, client = running
    assert wait_until(lambda: kpis(client)["produced"] > 0, timeout=20)
    first = kpis(client)["produced"]
    assert wait_until(lambda: kpis(client)["produced"] > first + 20, timeout=30), "counters stalled"

    stack.stop_plant(flush_timeout=10)
    plant, publisher = stack.plant, stack.publisher
    assert plant is not None
    assert publisher is not None
    assert publisher.pending() == 0

    def mirror() -> list[tuple[Any, ...]]:
        stations = client.get("/twin").json()["stations"]
        return [(s["id"], s["started"], s["good"], s["scrap"], s["state"]) for s in stations]

    truth = [(s.id, s.parts_started, s.parts_good, s.parts_scrap, s.state) for s in plant.stations]
    assert wait_until(lambda: mirror() == truth, timeout=20), (mirror(), truth)
    twin = client.get("/twin").json()
    assert twin["status"] == "online"
    assert twin["kpis"]["good"] == plant.parts_shipped
    assert twin["kpis"]["scrap"] == plant.parts_scrapped
    assert twin["kpis"]["work_in_process"] == plant.work_in_process
    # What the plant published as events is exactly what the twin counted.
    assert publisher.published["part_shipped"] == twin["kpis"]["good"]
    started = sum(station["started"] for station in twin["stations"])
    assert publisher.published["part_started"] == started

    # Telemetry goes at QoS 0, not covered by the flush: give the last samples a moment.
    published = sum(publisher.published.values())
    assert wait_until(
        lambda: client.get("/healthz").json()["ingest"]["accepted"] == published, timeout=10
    )
    health = client.get("/healthz").json()
    # The plant was stopped without a goodbye: once it has been quiet for longer than
    # stale_after_s, /healthz says so; nothing else may be wrong.
    assert health["ingest"]["connected"] is True
    assert all(reason.startswith("stale") for reason in health["reasons"]), health["reasons"]
    assert health["ingest"]["duplicates"] == 0
    assert health["ingest"]["gaps"] == 0
    assert sum(health["ingest"]["malformed"].values()) == 0
    # The plant's own side of the story: nothing refused, nothing waiting.
    assert health["plant"]["dropped"] == {}
    assert health["plant"]["outbox_pending"] == 0
    assert health["plant"]["published"]["part_shipped"] == twin["kpis"]["good"]


def test_line_goes_offline_when_the_plant_stops(mosquitto: Any) -> None:
    """The plant's stack stops and says goodbye; a twin of its own on the same
    broker (mosquitto: it outlives the plant, as the embedded broker does not)
    hears it and shows the line offline. Nobody else announces anything."""
    quiet = {"scoring_period_s": 0, "first_training": False}
    plant = Stack(load_config(), StackOptions(speed=600, seed=5, mqtt_url=mosquitto.url, **quiet))
    twin = Stack(
        load_config(),
        StackOptions(mqtt_url=mosquitto.url, run_plant=False, persistent_session=False, **quiet),
    )
    with (
        serve_in_thread(create_app(stack=twin)) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        plant.start()
        try:
            assert wait_until(lambda: client.get("/twin").json()["status"] == "online", 120)
        finally:
            plant.stop()
        assert wait_until(lambda: client.get("/twin").json()["status"] == "offline", 120)
        assert client.get("/healthz").json()["line_status"] == "offline"
