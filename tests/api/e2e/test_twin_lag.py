"""A twin behind a line it cannot slow (``up --twin-only``) says so, and computes
nothing from a torn view.

The line here is a plant outside the twin's process whose events (QoS 1) are held
back on their way, as a slow broker or network holds them, while its telemetry and
heartbeats (QoS 0) go straight through: the situation in which a twin that took the
newest telemetry's clock showed an OEE of a third of the line's. The test releases
the events in two steps and checks, each time, the twin's figures against what the
plant published: every count is the plant's own count of events before the twin's
watermark, no ratio passes 1, the lag shows in line seconds and in messages, and the
lag alarm is raised while the twin is behind and clears once it has caught up.
Once on Debian's mosquitto, once on the embedded broker; on two line templates.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from helpers import get_free_port, wait_until
from kpi_tolerance import effectiveness_tolerance

from api.app import create_app
from api.runtime.line import Stack
from api.runtime.options import StackOptions
from sensors.mqtt import connect, disconnect, new_client, parse_mqtt_url
from sensors.publisher import PlantPublisher
from twin.config.line import LineConfig, load_config
from twin.sim.live import MAX_SPEED, LiveRunner, realtime_environment
from twin.sim.plant import Plant

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
TEMPLATES = {
    "default": ROOT / "twin" / "lines" / "default.yaml",
    "bottling": ROOT / "examples" / "lines" / "bottling.yaml",
}
LINE_TIME_S = 1200.0
# The line announces the highest speed there is: its lag in wall seconds is then
# lag_s / 100,000, so the bound is set low enough for 1,200 line seconds to pass it.
LAG_ALARM_S = 0.002


class _Info:
    rc = mqtt.MQTT_ERR_SUCCESS

    def wait_for_publish(self, timeout: float | None = None) -> None:
        return None


class HeldBackEvents:
    """The plant's paho client, with its event and state messages (QoS 1) held back
    until released, in their order; everything else goes straight through."""

    def __init__(self, client: mqtt.Client) -> None:
        self.client = client
        self.held: list[tuple[str, bytes, int, bool]] = []
        self.events: list[dict[str, Any]] = []  # every event published, in order

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> Any:
        if topic.endswith("/event") or topic.endswith("/state"):
            if topic.endswith("/event"):
                self.events.append({**json.loads(payload), "station": topic.split("/")[-2]})
            self.held.append((topic, payload, qos, retain))
            return _Info()
        return self.client.publish(topic, payload, qos, retain)

    def release(self, count: int) -> None:
        for topic, payload, qos, retain in self.held[:count]:
            self.client.publish(topic, payload, qos, retain)
        del self.held[:count]


def plant_counts(events: list[dict[str, Any]], before: float) -> dict[str, Any]:
    """What the plant published of its events before line time ``before``."""
    finished = [
        event
        for event in events
        if event["event"] == "part_finished" and event["sim_time_s"] < before
    ]
    good_by_station: dict[str, int] = {}
    for event in finished:
        if event["result"] == "good":
            good_by_station[event["station"]] = good_by_station.get(event["station"], 0) + 1
    return {
        "good": sum(1 for e in finished if e["result"] == "good" and e["exits_line"]),
        "scrap": sum(1 for e in finished if e["result"] == "scrap"),
        "station_good": good_by_station,
    }


def ratios_within_one(view: dict[str, Any], config: LineConfig) -> None:
    """Availability, quality and yield at most 1; effectiveness and OEE at most 1
    within the chance of a few short processing times (docs/kpis.md)."""
    products = [product.id for product in config.products]
    specs = {station.id: station for station in config.stations}
    tolerance = {
        station["id"]: effectiveness_tolerance(
            specs[station["id"]], products, station["kpis"]["produced"]
        )
        for station in view["stations"]
    }
    constraint = view["kpis"].get("constraint")
    rows = [(view["kpis"], tolerance.get(constraint, 0.0))]
    rows += [(station["kpis"], tolerance[station["id"]]) for station in view["stations"]]
    for kpis, chance in rows:
        for name in ("availability", "quality_ratio", "yield_ratio"):
            value = kpis.get(name)
            assert value is None or 0 <= value <= 1 + 1e-9, (name, value)
        for name in ("effectiveness", "oee"):
            value = kpis.get(name)
            assert value is None or 0 <= value <= 1 + chance, (name, value, chance)


def check_consistent(
    client: TestClient, events: list[dict[str, Any]], config: LineConfig
) -> dict[str, Any]:
    """The twin's counts are the plant's own counts before the twin's watermark."""
    view = client.get("/twin").json()
    kpis = client.get("/kpis").json()
    as_of = view["sim_time_s"]
    assert as_of is not None
    assert kpis["as_of_s"] == as_of
    expected = plant_counts(events, as_of)
    assert kpis["good"] == expected["good"]
    assert kpis["scrap"] == expected["scrap"]
    stations = {station["id"]: station["good"] for station in view["stations"]}
    assert {sid: good for sid, good in stations.items() if good} == expected["station_good"]
    ratios_within_one(view, config)
    return view


def lag_alarms(client: TestClient) -> list[dict[str, Any]]:
    """The lag alarm while active (once cleared it stays listed, returned
    unacknowledged, until an operator acknowledges it)."""
    return [
        alarm
        for alarm in client.get("/alarms").json()["alarms"]
        if alarm["kind"] == "lag" and alarm["active"]
    ]


@pytest.fixture(params=["mosquitto", "embedded"])
def broker_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "mosquitto":
        url: str = request.getfixturevalue("mosquitto").url
        return url
    return None


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_a_twin_behind_a_line_it_cannot_slow_says_so_and_stays_consistent(
    template: str, broker_url: str | None
) -> None:
    config: LineConfig = load_config(TEMPLATES[template])
    port = get_free_port()
    options = StackOptions(
        run_plant=False,
        mqtt_url=broker_url,
        mqtt_port=port,
        scoring_period_s=0,
        first_training=False,
        persistent_session=False,
        lag_alarm_s=LAG_ALARM_S,
    )
    stack = Stack(config, options)
    with TestClient(create_app(stack=stack)) as client:
        assert stack.address is not None
        url = broker_url or f"mqtt://127.0.0.1:{port}"
        plant_client = new_client(f"outside-plant-{port}")
        gate = HeldBackEvents(plant_client)
        plant = Plant(config, seed=7)
        # The line's own runner is elsewhere: this one only says how fast it goes.
        runner = LiveRunner(realtime_environment(MAX_SPEED), MAX_SPEED)
        publisher = PlantPublisher(
            plant,
            gate,  # type: ignore[arg-type]
            stack.topics,
            rng=random.Random(7),
            live=runner,
        )
        publisher.attach()
        connect(plant_client, parse_mqtt_url(url))
        try:
            publisher.announce("online")
            assert wait_until(lambda: client.get("/twin").json()["status"] == "online", 20)
            plant.run(until=LINE_TIME_S)
            publisher.heartbeat(force=True)
            events = gate.events
            assert events, "the plant published no events"

            # Nothing of the events has arrived: telemetry is current, the twin is not.
            def heartbeat_seen() -> bool:
                view = client.get("/twin").json()
                return (view["newest_sim_time_s"] or 0) >= LINE_TIME_S

            assert wait_until(heartbeat_seen, 30)
            assert wait_until(lambda: bool(lag_alarms(client)), 30)
            view = check_consistent(client, events, config)
            assert view["lag_messages"] == len(events)
            assert view["lag_s"] > LINE_TIME_S / 2

            # Half of the held messages arrive: the twin moves on, consistent and behind.
            half = len(gate.held) // 2
            released = gate.held[:half]
            gate.release(half)
            released_events = sum(1 for topic, *_ in released if topic.endswith("/event"))

            def half_in() -> bool:
                return client.get("/twin").json()["lag_messages"] == len(events) - released_events

            assert wait_until(half_in, 60)
            client.get("/twin")  # settle once more after the last one arrived
            view = check_consistent(client, events, config)
            assert 0 < view["sim_time_s"] < LINE_TIME_S
            assert view["lag_s"] > 0
            assert lag_alarms(client)

            # The rest arrive: caught up, and the alarm clears.
            gate.release(len(gate.held))
            publisher.heartbeat(force=True)

            def caught_up() -> bool:
                view = client.get("/twin").json()
                return view["lag_messages"] == 0 and view["lag_s"] == 0

            assert wait_until(caught_up, 60)
            view = check_consistent(client, events, config)
            assert view["sim_time_s"] == pytest.approx(LINE_TIME_S)
            assert view["kpis"]["good"] == plant.parts_shipped
            assert lag_alarms(client) == []
            health = client.get("/healthz").json()
            assert health["ingest"]["gaps"] == 0
        finally:
            disconnect(plant_client)
