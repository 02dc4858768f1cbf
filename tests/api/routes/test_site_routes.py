"""The site routes without a broker: one line served as ``/lines/{line_id}``,
its commands refused cleanly when no line is connected, and its economics."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from feeding import feed_twin

from api.app import create_app
from twin.config.line import load_config
from twin.state.line import TwinState

TOKEN = "site-routes-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SETPOINT = {"action": "set_setpoint", "setpoint": "speed", "value": 1.1}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    config = load_config()
    twin = TwinState(config.line.site, config.line.area, config.line.id)
    feed_twin(1, seed=2, twin=twin)
    with TestClient(create_app(twin_state=twin, api_token=TOKEN, config=config)) as test:
        yield test


def test_without_a_site_the_one_line_is_line1_and_site_is_404(client: TestClient) -> None:
    assert client.get("/site").status_code == 404
    assert [line["id"] for line in client.get("/lines").json()] == ["line1"]
    assert client.get("/lines/line1").json() == client.get("/twin").json()


def test_a_line_command_needs_the_token_then_a_known_line_and_station(
    client: TestClient,
) -> None:
    path = "/lines/line1/stations/welding/commands"
    assert client.post(path, json=SETPOINT).status_code == 401
    unknown_line = client.post("/lines/west/stations/welding/commands", json=SETPOINT, headers=AUTH)
    assert unknown_line.status_code == 404
    assert "'west' is unknown; lines: line1" in unknown_line.json()["detail"]
    unknown_station = client.post(
        "/lines/line1/stations/lathe/commands", json=SETPOINT, headers=AUTH
    )
    assert unknown_station.status_code == 404
    assert "'lathe' is unknown on line 'line1'" in unknown_station.json()["detail"]
    # The body is checked as for /stations/{station_id}/commands.
    bad = client.post(path, json={"action": "set_speed", "factor": 2}, headers=AUTH)
    assert bad.status_code == 422
    # No plant behind this app: the line is not connected.
    offline = client.post(path, json=SETPOINT, headers=AUTH)
    assert offline.status_code == 503
    assert "no line is connected" in offline.json()["detail"]


def test_a_lines_economics_are_the_first_lines_economics(client: TestClient) -> None:
    line = client.get("/lines/line1/economics")
    assert line.status_code == 200
    assert line.json() == client.get("/economics").json()
    assert client.get("/lines/west/economics").status_code == 404


def test_without_a_config_a_line_has_no_prices() -> None:
    app = create_app(twin_state=TwinState("site", "area", "line1"))
    with TestClient(app) as test:
        answer = test.get("/lines/line1/economics")
    assert answer.status_code == 503
    assert "no prices" in answer.json()["detail"]
