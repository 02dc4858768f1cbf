"""GET /economics over a twin fed with real plant messages (no broker)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from feeding import FedTwin, feed_twin

from api.app import create_app
from twin.config.line import LineConfig, load_config
from twin.state.economics import EconomicsView, line_economics
from twin.state.line import TwinState


def _app(twin_state: TwinState, config: LineConfig | None = None) -> FastAPI:
    """The app as ``create_app`` builds it: /economics must be among its routes."""
    return create_app(twin_state=twin_state, config=config)


@pytest.fixture(scope="module")
def config() -> LineConfig:
    return load_config()


@pytest.fixture(scope="module")
def fed(config: LineConfig) -> FedTwin:
    return feed_twin(2, seed=9, config=config)


@pytest.fixture(scope="module")
def client(fed: FedTwin, config: LineConfig) -> Iterator[TestClient]:
    with TestClient(_app(twin_state=fed.twin, config=config)) as test:
        yield test


def test_economics_answers_with_the_twins_figures(
    client: TestClient, fed: FedTwin, config: LineConfig
) -> None:
    response = client.get("/economics")
    assert response.status_code == 200
    body = EconomicsView.model_validate(response.json())
    expected = line_economics(fed.twin.view(), config)
    # Two hours in, the shift began at the twin's start (06:00): no snapshot of it.
    assert body.window == "since_start"
    assert body.costs == expected.costs
    assert body.pareto == expected.pareto
    assert body.costs.good_parts == fed.plant.parts_shipped > 0
    assert body.costs.cost_per_good_part is not None
    assert body.currency == config.economics.currency
    assert body.bottleneck == fed.twin.view().kpis.bottleneck


def test_economics_is_in_the_openapi_schema_with_its_503(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/economics"]["get"]
    assert "503" in operation["responses"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("/EconomicsView")


def test_without_a_line_config_it_is_503() -> None:
    app = _app(twin_state=TwinState("plant-a", "fabrication", "line1"))
    with TestClient(app) as test:
        response = test.get("/economics")
    assert response.status_code == 503
    assert "config" in response.json()["detail"]


def test_a_twin_that_heard_nothing_yet_has_no_per_part_figures(config: LineConfig) -> None:
    app = _app(twin_state=TwinState("plant-a", "fabrication", "line1"), config=config)
    with TestClient(app) as test:
        body = test.get("/economics").json()
    assert body["costs"]["cost_per_good_part"] is None
    assert body["costs"]["energy_per_good_part_kwh"] is None
    assert body["pareto"] == []
    assert body["window"] == "since_start"
