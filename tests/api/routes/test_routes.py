"""The API's routes over a twin fed with real plant messages (no broker)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from feeding import feed_twin

from api.app import create_app
from sensors.ingest import Ingest
from sensors.mqtt import new_client
from sensors.topics import LineTopics
from twin.contract import STATION_STATES
from twin.sim.plant import Plant
from twin.state.line import TwinState


@pytest.fixture(scope="module")
def client() -> TestClient:
    fed = feed_twin(2, seed=9)
    twin, ingest, topics = fed.twin, fed.ingest, fed.topics
    ingest.handle(topics.station("welding", "telemetry"), b"garbage")
    client = TestClient(create_app(twin_state=twin, ingest=ingest))
    client.plant = fed.plant  # type: ignore[attr-defined]
    return client


def test_twin_shows_the_whole_line(client: TestClient) -> None:
    response = client.get("/twin")
    assert response.status_code == 200
    body = response.json()
    plant: Plant = client.plant  # type: ignore[attr-defined]
    assert body["status"] == "online"
    assert body["line"] == "line1"
    assert [s["id"] for s in body["stations"]] == [s.id for s in plant.stations]
    assert body["kpis"]["good"] == plant.parts_shipped
    assert body["kpis"]["scrap"] == plant.parts_scrapped
    assert all(s["state"] in STATION_STATES for s in body["stations"])


def test_one_station(client: TestClient) -> None:
    plant: Plant = client.plant  # type: ignore[attr-defined]
    body = client.get("/stations/machining").json()
    assert body["id"] == "machining"
    assert body["good"] == plant.by_id["machining"].parts_good
    assert body["input_buffer"]["capacity"] == 6
    assert body["telemetry"]["vibration_mm_s"] >= 0


def test_all_stations(client: TestClient) -> None:
    assert len(client.get("/stations").json()) == 5


def test_unknown_station_is_a_clear_404(client: TestClient) -> None:
    response = client.get("/stations/nope")
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert "'nope' is unknown" in detail
    assert "cutting" in detail


def test_kpis(client: TestClient) -> None:
    body = client.get("/kpis").json()
    assert 0 < body["oee"] <= 1
    assert body["bottleneck"] == "machining"
    assert body["produced"] == body["good"] + body["scrap"]


def test_healthz_counts_the_malformed_message(client: TestClient) -> None:
    body = client.get("/healthz").json()
    assert body["line_status"] == "online"
    assert body["ingest"]["malformed"]["not_json"] == 1
    assert body["ingest"]["accepted"] == body["ingest"]["received"] - 1


def test_openapi_docs(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/twin", "/stations/{station_id}", "/kpis", "/healthz"} <= set(paths)


def test_healthz_is_503_when_the_ingest_is_disconnected() -> None:
    twin = TwinState("s", "a", "l")
    ingest = Ingest(twin, LineTopics("s", "a", "l"), new_client("never-connected"))
    response = TestClient(create_app(twin_state=twin, ingest=ingest)).get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "degraded"
    assert response.json()["ingest"]["connected"] is False
