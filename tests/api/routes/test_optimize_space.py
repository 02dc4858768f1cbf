"""The optimizer's decision space over the API: each line lists its own setpoints,
and a request that names one the line does not have is a 422 naming ``vars``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from helpers import wait_until

from api.app import create_app
from twin.config.line import LineConfig, load_config
from twin.state.line import TwinState

TOKEN = "optimize-space-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "lines"


def client_for(config: LineConfig) -> TestClient:
    line = config.line
    app = create_app(
        twin_state=TwinState(line.site, line.area, line.id), config=config, api_token=TOKEN
    )
    return TestClient(app)


@pytest.fixture
def smt() -> Iterator[TestClient]:
    with client_for(load_config(EXAMPLES / "smt.yaml")) as client:
        yield client


@pytest.mark.parametrize("template", [None, "smt.yaml", "bottling.yaml", "cnc_cell.yaml"])
def test_each_line_lists_its_own_ranged_setpoints(template: str | None) -> None:
    config = load_config(EXAMPLES / template if template else None)
    ranged = {
        f"{station.id}.{name}": setpoint
        for station in config.stations
        for name in ("speed", "temperature_c")
        if (setpoint := getattr(station.process, name)) is not None and setpoint.min < setpoint.max
    }
    with client_for(config) as client:
        answer = client.get("/optimize/space")
    assert answer.status_code == 200, answer.text
    space = answer.json()
    assert [item["key"] for item in space["setpoints"]] == list(ranged)
    for item in space["setpoints"]:
        setpoint = ranged[item["key"]]
        assert (item["min"], item["max"], item["default"]) == (
            setpoint.min,
            setpoint.max,
            setpoint.default,
        )
        assert 0 < item["step"] <= setpoint.max - setpoint.min
        assert item["in_default_space"] == (item["key"] in space["default"])
    assert space["default"], space
    assert set(space["default"]) <= set(ranged)
    assert space["size"] >= 2
    assert space["reason"] is None


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["printer.sped"], "station 'printer' has no setpoint 'sped'"),
        (["machining.speed"], "unknown station 'machining'"),
        (["printer.speed", "printer.speed"], "named twice"),
    ],
)
def test_a_setpoint_the_line_does_not_have_is_a_422_naming_vars(
    smt: TestClient, names: list[str], message: str
) -> None:
    answer = smt.post("/optimize", json={"vars": names}, headers=AUTH)
    assert answer.status_code == 422, answer.text
    (problem,) = answer.json()["detail"]
    assert problem["loc"] == ["body", "vars"]
    assert message in problem["msg"]


@pytest.mark.parametrize("body", [{"vars": []}, {"vars": "printer.speed"}, {"vars": [1]}])
def test_vars_must_be_a_list_of_names(smt: TestClient, body: dict[str, object]) -> None:
    answer = smt.post("/optimize", json=body, headers=AUTH)
    assert answer.status_code == 422, answer.text
    assert "vars" in answer.text


@pytest.mark.parametrize("doublings", [-1, 5, 1.5])
def test_confirm_doublings_out_of_range_is_a_422_naming_it(
    smt: TestClient, doublings: float
) -> None:
    answer = smt.post("/optimize", json={"confirm_doublings": doublings}, headers=AUTH)
    assert answer.status_code == 422, answer.text
    (problem,) = answer.json()["detail"]
    assert problem["loc"] == ["body", "confirm_doublings"]


@pytest.mark.integration
@pytest.mark.slow
def test_a_run_over_named_setpoints_recommends_those(smt: TestClient) -> None:
    body = {
        # One of the two the line's default space holds: the run searches it alone.
        "vars": ["reflow.temperature_c:5"],
        "budget": 2,
        "hours": 2.0,
        "replications": 1,
        "seed": 4,
    }
    started = smt.post("/optimize", json=body, headers=AUTH)
    assert started.status_code == 202, started.text
    job_id = started.json()["id"]
    assert wait_until(
        lambda: smt.get(f"/jobs/{job_id}").json()["status"] in {"succeeded", "failed"},
        timeout=300,
        interval=0.5,
    )
    final = smt.get(f"/jobs/{job_id}").json()
    assert final["status"] == "succeeded", final
    chosen = smt.get("/optimize/recommendation").json()
    assert list(chosen["setpoints"]) == ["reflow"]
    assert list(chosen["setpoints"]["reflow"]) == ["temperature_c"]
    # On the 5 degree lattice from the range's min.
    config = load_config(EXAMPLES / "smt.yaml")
    limits = next(s for s in config.stations if s.id == "reflow").process.temperature_c
    assert limits is not None
    value = chosen["setpoints"]["reflow"]["temperature_c"]
    assert limits.min <= value <= limits.max
    assert (value - limits.min) % 5.0 == pytest.approx(0.0, abs=1e-9)


def test_an_api_without_a_line_has_nothing_to_choose() -> None:
    app = create_app(twin_state=TwinState("site", "area", "line1"), api_token=TOKEN)
    with TestClient(app) as client:
        answer = client.get("/optimize/space")
    assert answer.status_code == 200, answer.text
    space = answer.json()
    assert space["setpoints"] == []
    assert space["default"] is None
    assert "no line config" in space["reason"]
