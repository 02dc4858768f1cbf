"""Request bodies are taken as the schema says: no coercion, sane bounds.

Where the OpenAPI schema says number, a boolean or a string is an error, not
``0.0``; where it says boolean, ``0`` is an error, not ``false``. Nested line
config (a what-if's shift plan) is as strict as the top level. Every 422 names
the field in the list FastAPI declares.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from twin.state.line import TwinState

TOKEN = "strict-bodies-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    app = create_app(twin_state=TwinState("site", "area", "line1"), api_token=TOKEN)
    with TestClient(app) as test_client:
        yield test_client


CASES: list[tuple[str, dict[str, Any], tuple[str | int, ...]]] = [
    (
        "/stations/welding/commands",
        {"action": "set_setpoint", "setpoint": "speed", "value": False},
        ("body", "set_setpoint", "value"),
    ),
    (
        "/stations/welding/commands",
        {"action": "set_setpoint", "setpoint": "speed", "value": "1.1"},
        ("body", "set_setpoint", "value"),
    ),
    ("/stations/welding/commands", {"action": "stop", "timeout_s": 5e-324}, ("body", "stop")),
    ("/line/commands", {"action": "set_speed", "factor": True}, ("body", "set_speed", "factor")),
    ("/line/commands", {"action": "pause", "timeout_s": "5"}, ("body", "pause", "timeout_s")),
    ("/training", {"activate": 0}, ("body", "activate")),
    ("/training", {"hours": "48"}, ("body", "hours")),
    ("/training", {"seed": 1.5}, ("body", "seed")),
    ("/tuning", {"candidates": True}, ("body", "candidates")),
    ("/optimize", {"budget": "30"}, ("body", "budget")),
    ("/optimize/apply", {"timeout_s": False}, ("body", "timeout_s")),
    ("/scenarios", {"replications": True}, ("body", "replications")),
    ("/scenarios", {"horizon_h": "8"}, ("body", "horizon_h")),
    (
        "/scenarios",
        {"changes": {"setpoints": {"welding": {"temperature_c": True}}}},
        ("body", "changes", "setpoints", "welding", "temperature_c"),
    ),
    (
        "/scenarios",
        {"changes": {"shift_plan": {"period_h": True}}},
        ("body", "changes", "shift_plan", "period_h"),
    ),
    (
        "/scenarios",
        {"changes": {"release": {"policy": "conwip", "wip_cap": "8"}}},
        ("body", "changes", "release", "wip_cap"),
    ),
]


@pytest.mark.parametrize(
    ("path", "body", "location"), CASES, ids=[f"{c[0]} {sorted(c[1])}" for c in CASES]
)
def test_a_coercible_value_of_the_wrong_type_is_refused(
    client: TestClient, path: str, body: dict[str, Any], location: tuple[str | int, ...]
) -> None:
    response = client.post(path, json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list)
    assert any(tuple(error["loc"][: len(location)]) == location for error in detail), detail


def test_a_whole_number_is_a_number(client: TestClient) -> None:
    """JSON has one number type: 95 is a fine temperature, only the type is checked."""
    response = client.post(
        "/stations/welding/commands",
        json={"action": "set_setpoint", "setpoint": "temperature_c", "value": 95},
        headers=AUTH,
    )
    # Valid: it gets past validation to the missing line (503), not a 422.
    assert response.status_code == 503, response.text
