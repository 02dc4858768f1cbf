"""Who may change the line: the token, the start checks, CORS and request sizes.

Commands go through a real stack (embedded broker, live plant): the API sends
them over MQTT and returns the plant's ack.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from helpers import get_free_port, wait_until

from api.app import create_app
from api.runtime.line import Stack
from api.runtime.options import StackOptions
from api.security import TokenError, check_token
from twin.config.line import load_config
from twin.state.line import TwinState

TOKEN = "security-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MUTATING = [
    ("/stations/welding/commands", {"action": "stop"}),
    ("/lines/line1/stations/welding/commands", {"action": "stop"}),
    ("/line/commands", {"action": "pause"}),
    ("/training", {}),
    ("/tuning", {}),
    ("/optimize", {}),
    ("/optimize/apply", {}),
    ("/scenarios", {}),
    ("/jobs/abc123/cancel", {}),
    # The same resources of one line of a site (the one line here).
    ("/lines/line1/line/commands", {"action": "pause"}),
    ("/lines/line1/optimize", {}),
    ("/lines/line1/optimize/apply", {}),
    ("/lines/line1/scenarios", {}),
    # An operator's actions on an alarm, at the root and per line.
    *(
        (f"{prefix}/alarms/lag:-:-/{action}", body)
        for prefix in ("", "/lines/line1")
        for action, body in (
            ("ack", {}),
            ("shelve", {"for_s": 60, "reason": "x"}),
            ("unshelve", {}),
            ("out-of-service", {"reason": "x"}),
            ("return-to-service", {}),
        )
    ),
]
# Operations that change nothing although they are not GETs.
READ_ONLY = {("post", "/models/{name}/predict")}


@pytest.fixture
def twin_only() -> Iterator[TestClient]:
    app = create_app(twin_state=TwinState("site", "area", "line1"), api_token=TOKEN)
    with TestClient(app) as client:
        yield client


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    subject = Stack(load_config(), StackOptions(speed=300, seed=4, mqtt_port=get_free_port()))
    subject.start()
    try:
        yield subject
    finally:
        subject.stop()


@pytest.fixture
def live(stack: Stack) -> Iterator[TestClient]:
    with TestClient(create_app(twin_state=stack.twin, api_token=TOKEN)) as client:
        client.app.state.stack = stack  # type: ignore[attr-defined]
        yield client


@pytest.mark.parametrize(("path", "body"), MUTATING)
def test_mutating_endpoints_need_the_token(
    twin_only: TestClient, path: str, body: dict[str, str]
) -> None:
    missing = twin_only.post(path, json=body)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = twin_only.post(path, json=body, headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 403
    basic = twin_only.post(path, json=body, headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert basic.status_code == 401


def test_every_mutating_operation_is_checked(twin_only: TestClient) -> None:
    """A new POST or DELETE must join MUTATING (or READ_ONLY): none goes unguarded."""
    schema = twin_only.get("/openapi.json").json()
    operations = {
        (method, path)
        for path, item in schema["paths"].items()
        for method in item
        if method not in {"get", "head", "options"}
    }
    templates = {
        "welding": "{station_id}",
        "abc123": "{job_id}",
        "line1": "{line_id}",
        "lag:-:-": "{alarm_id}",
    }
    checked = {
        ("post", "/".join(templates.get(part, part) for part in path.split("/")))
        for path, _ in MUTATING
    }
    assert operations - READ_ONLY == checked


def test_an_app_without_a_token_refuses_every_mutation() -> None:
    app = create_app(twin_state=TwinState("site", "area", "line1"))
    with TestClient(app) as client:
        answer = client.post("/line/commands", json={"action": "pause"}, headers=AUTH)
    assert answer.status_code == 403
    assert "no token" in answer.json()["detail"]


def test_reading_needs_no_token(twin_only: TestClient) -> None:
    assert twin_only.get("/twin").status_code == 200


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        (None, "is not set"),
        ("", "is not set"),
        ("change-me-demo-only-api-token", "placeholder"),
        ("short", "5 characters"),
    ],
)
def test_weak_tokens_are_refused(token: str | None, problem: str) -> None:
    with pytest.raises(TokenError, match=problem):
        check_token(token)
    assert check_token(TOKEN) == TOKEN


def run_up(*args: str, token: str | None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "FACTORY_TWIN_API_TOKEN"}
    if token is not None:
        env["FACTORY_TWIN_API_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "api.cli", "up", "--api-port", "0", "--mqtt-port", "0", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("token", [None, "change-me-demo-only-api-token"])
def test_up_refuses_to_start_with_no_or_the_default_token(token: str | None) -> None:
    result = run_up(token=token)
    assert result.returncode == 2, result.stderr
    assert "FACTORY_TWIN_API_TOKEN" in result.stderr
    assert "--demo" in result.stderr or "placeholder" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.integration
def test_demo_mode_makes_a_token_and_shows_it_once() -> None:
    api_port = get_free_port()
    env = {key: value for key, value in os.environ.items() if key != "FACTORY_TWIN_API_TOKEN"}
    process = subprocess.Popen(
        [
            sys.executable, "-m", "api.cli", "up", "--demo",
            "--api-port", str(api_port), "--mqtt-port", str(get_free_port()),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        # The token comes last, framed, once the API answers: the banner's lines.
        banner = [process.stdout.readline() for _ in range(6)]
        assert banner[0].startswith("+-"), banner
        assert banner[-1].startswith("+-"), banner
        assert all(line.startswith("| ") for line in banner[1:-1]), banner
        assert "API token" in banner[2]
        token = banner[3].strip("| \n")
        assert len(token) >= 16
        assert f"/#token={token}" in banner[4]
        import httpx

        base = f"http://127.0.0.1:{api_port}"
        assert _reachable(base), "the banner is printed once the API answers"
        answer = httpx.post(
            f"{base}/line/commands",
            json={"action": "set_speed", "factor": 120},
            headers={"Authorization": f"Bearer {token}"},
            timeout=15,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["accepted"] is True
        assert httpx.post(f"{base}/line/commands", json={"action": "pause"}).status_code == 401
    finally:
        process.terminate()
        process.wait(15)
        rest = process.stdout.read() if process.stdout else ""
    assert token not in rest  # shown once


def _reachable(base: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{base}/healthz", timeout=2).status_code in (200, 503)
    except httpx.HTTPError:
        return False


@pytest.mark.integration
def test_a_setpoint_command_returns_the_lines_ack(live: TestClient, stack: Stack) -> None:
    accepted = live.post(
        "/stations/machining/commands",
        json={"action": "set_setpoint", "setpoint": "speed", "value": 1.15},
        headers=AUTH,
    )
    assert accepted.status_code == 200, accepted.text
    ack = accepted.json()
    assert ack["accepted"] is True
    assert ack["action"] == "set_setpoint"
    assert stack.plant is not None
    assert wait_until(
        lambda: (
            stack.plant is not None
            and stack.plant.stations[1].setpoints["speed"] == pytest.approx(1.15)
        ),
        timeout=5,
    )
    rejected = live.post(
        "/stations/machining/commands",
        json={"action": "set_setpoint", "setpoint": "speed", "value": 9},
        headers=AUTH,
    )
    assert rejected.status_code == 200
    assert rejected.json()["accepted"] is False
    assert "out of range" in rejected.json()["reason"]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/stations/machining/commands", {"action": "set_setpoint", "value": 1.0}, "setpoint"),
        ("/stations/machining/commands", {"action": "explode"}, "action"),
        ("/line/commands", {"action": "set_speed", "factor": 5000}, "factor"),
        ("/line/commands", {"action": "pause", "timeout_s": 600}, "timeout_s"),
    ],
)
def test_bad_command_bodies_name_the_field(
    live: TestClient, path: str, body: dict[str, object], field: str
) -> None:
    answer = live.post(path, json=body, headers=AUTH)
    assert answer.status_code == 422
    assert field in answer.text


@pytest.mark.integration
def test_an_unknown_station_is_404(live: TestClient) -> None:
    answer = live.post("/stations/lathe/commands", json={"action": "stop"}, headers=AUTH)
    assert answer.status_code == 404
    assert "lathe" in answer.json()["detail"]


def test_cors_is_off_by_default_and_on_for_named_origins() -> None:
    twin = TwinState("site", "area", "line1")
    preflight = {
        "Origin": "http://example.test",
        "Access-Control-Request-Method": "POST",
    }
    with TestClient(create_app(twin_state=twin, api_token=TOKEN)) as client:
        answer = client.get("/twin", headers={"Origin": "http://example.test"})
        assert "access-control-allow-origin" not in answer.headers
        assert client.options("/line/commands", headers=preflight).status_code != 200
    app = create_app(twin_state=twin, api_token=TOKEN, cors_origins=["http://example.test"])
    with TestClient(app) as client:
        answer = client.get("/twin", headers={"Origin": "http://example.test"})
        assert answer.headers["access-control-allow-origin"] == "http://example.test"
        other = client.get("/twin", headers={"Origin": "http://elsewhere.test"})
        assert "access-control-allow-origin" not in other.headers


def test_request_bodies_are_bounded() -> None:
    app = create_app(
        twin_state=TwinState("site", "area", "line1"), api_token=TOKEN, max_request_bytes=2048
    )
    with TestClient(app) as client:
        big = client.post(
            "/line/commands",
            content=b'{"action": "pause", "pad": "' + b"x" * 5000 + b'"}',
            headers={**AUTH, "Content-Type": "application/json"},
        )
        assert big.status_code == 413
        assert "2048" in big.json()["detail"]

        def chunks() -> Iterator[bytes]:
            yield b'{"action": "pause", "pad": "'
            for _ in range(10):
                yield b"x" * 500
            yield b'"}'

        streamed = client.post(
            "/line/commands",
            content=chunks(),
            headers={**AUTH, "Content-Type": "application/json"},
        )
        assert streamed.status_code == 413
        small = client.post("/line/commands", json={"action": "pause"}, headers=AUTH)
        assert small.status_code == 503  # within the limit: on to the route (no line here)


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity"])
def test_a_non_finite_number_is_a_422_naming_the_field(
    twin_only: TestClient, number: bytes
) -> None:
    answer = twin_only.post(
        "/line/commands",
        content=b'{"action": "set_speed", "factor": ' + number + b"}",
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert answer.status_code == 422, answer.text
    assert any(error["loc"][-1] == "factor" for error in answer.json()["detail"])
