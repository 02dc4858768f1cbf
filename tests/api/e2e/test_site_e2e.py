"""A site end to end: two lines sharing a repair crew, one broker, one API.

Each line publishes on its own branch of the ISA-95 tree, each line's twin is
built from that branch only, and each line's counts in ``GET /lines/{id}``
equal what that line published. Once in process (a ``SiteStack`` with the
embedded broker, where the simulator's truth can be read), once as users run
it: ``factory-twin up --site`` against mosquitto, with an outside subscriber.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from helpers import Mosquitto, Recorder, get_free_port, port_open, wait_until

from api.app import create_app
from api.runtime.options import StackOptions
from api.runtime.site import SiteStack, line_history_path
from sensors.command_client import Command, send_commands
from sensors.mqtt import parse_mqtt_url
from sensors.topics import LineTopics
from twin.config.site import parse_site

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SITE_ID = "works"
TOKEN = "site-test-token-0123456789abcdef"


# South's machines cost labour, north's nothing: each line's economics shows whose prices it used.
SOUTH_LABOUR_PER_H = 36.0


def busy_line(line_id: str, area: str, mean_s: float, labour_per_h: float = 0.0) -> dict[str, Any]:
    """Three machines that break down often, so that the crew is in demand."""
    return {
        "line": {"id": line_id, "area": area},
        "stations": [
            {
                "id": f"m{index}",
                "processing_time": {"distribution": "deterministic", "mean_s": mean_s},
                "failures": {"mtbf_s": 600, "mttr_s": 120},
                "defect_probability": 0.02,
                **({"input_buffer_capacity": 5} if index else {}),
                **({"costs": {"labour_per_h": labour_per_h}} if labour_per_h else {}),
            }
            for index in range(3)
        ],
    }


SITE = {
    "site": {"id": SITE_ID, "name": "Works"},
    "lines": [
        {"inline": busy_line("north", "hall-1", 10)},
        {"inline": busy_line("south", "hall-2", 14, SOUTH_LABOUR_PER_H)},
    ],
    "shared_repair_crews": [{"id": "fitters", "size": 1, "lines": ["north", "south"]}],
}


def get(client: httpx.Client, path: str) -> Any:
    response = client.get(path)
    response.raise_for_status()
    return response.json()


@pytest.fixture
def running() -> Iterator[tuple[SiteStack, httpx.Client]]:
    site = SiteStack(parse_site(SITE), StackOptions(speed=600, seed=5, mqtt_port=get_free_port()))
    port = get_free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(site=site, api_token=TOKEN),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    assert wait_until(lambda: server.started, timeout=20), "API did not start"
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        yield site, client
    server.should_exit = True
    thread.join(10)
    assert not thread.is_alive()
    assert not site.started
    assert all(not stack.started for stack in site.lines.values())


def test_each_lines_counts_equal_what_that_line_published(
    running: tuple[SiteStack, httpx.Client],
) -> None:
    site, client = running

    def produced(line_id: str) -> int:
        return int(get(client, f"/lines/{line_id}")["kpis"]["produced"])

    assert wait_until(lambda: min(produced("north"), produced("south")) > 40, timeout=40)
    assert site.plant is not None
    waits = site.plant.crew_waits()
    # The twin books down time up to its own clock, which trails the plant's by at
    # most one telemetry period once the plant has stopped and flushed: with three
    # machines a line's twin may miss 3 x that lag of crew waiting. So the plant
    # runs until every line has waited clearly longer than that, whatever pace a
    # busy machine allows (one short wait below the lag bound proves nothing).
    telemetry_period_s = site.lines["north"].config.sensors.telemetry_period_s
    enough_s = 2 * 3 * telemetry_period_s
    assert wait_until(lambda: min(w.wait_s for w in waits.values()) > enough_s, timeout=120), waits

    # At 600x two lines queue thousands of QoS 1 messages; flushing them on a
    # loaded machine takes a while (the wait ends as soon as they are acked).
    site.stop_plant(flush_timeout=60)
    for line_id, stack in site.lines.items():
        plant, publisher = stack.plant, stack.publisher
        assert plant is not None
        assert publisher is not None
        assert plant is site.plant.plants[line_id]
        assert publisher.pending() == 0

        def mirror(line_id: str = line_id) -> list[tuple[Any, ...]]:
            stations = get(client, f"/lines/{line_id}")["stations"]
            return [(s["id"], s["started"], s["good"], s["scrap"], s["state"]) for s in stations]

        truth = [
            (s.id, s.parts_started, s.parts_good, s.parts_scrap, s.state) for s in plant.stations
        ]
        assert wait_until(lambda m=mirror, t=truth: m() == t, timeout=20), (mirror(), truth)
        line = get(client, f"/lines/{line_id}")
        assert (line["site"], line["line"], line["status"]) == (SITE_ID, line_id, "online")
        assert line["kpis"]["good"] == plant.parts_shipped == publisher.published["part_shipped"]
        assert line["kpis"]["scrap"] == plant.parts_scrapped
        assert line["kpis"]["scrap"] == publisher.published["part_finished_scrap"]
        assert sum(s["started"] for s in line["stations"]) == publisher.published["part_started"]
        station = get(client, f"/lines/{line_id}/stations/m1")
        assert station == line["stations"][1]
        # The contention shows in the twin: machines waiting for the fitter while
        # they repair the other line are down, and the twin books it as down time.
        twin_down = sum(s["kpis"]["down_time_s"] for s in line["stations"])
        lag = plant.now - line["sim_time_s"]
        assert twin_down >= waits[line_id].wait_s - 3 * lag > 0

    view = get(client, "/site")
    assert view["id"] == SITE_ID
    assert view["shared_repair_crews"] == [
        {"id": "fitters", "size": 1, "lines": ["north", "south"]}
    ]
    for headline, (line_id, stack) in zip(view["lines"], site.lines.items(), strict=True):
        assert headline["id"] == line_id
        assert (
            headline["topic_prefix"] == f"factory/v1/{SITE_ID}/{stack.config.line.area}/{line_id}"
        )
        assert headline["shared_repair_crew"] == "fitters"
        assert headline["published"] == dict(stack.publisher.published)  # type: ignore[union-attr]
        assert headline["kpis"] == get(client, f"/lines/{line_id}")["kpis"]
    assert get(client, "/lines") == view["lines"]
    # The single-line endpoints serve the site's first line.
    assert get(client, "/twin") == get(client, "/lines/north")
    assert client.get("/lines/west").status_code == 404
    assert "lines: north, south" in client.get("/lines/west").json()["detail"]
    assert client.get("/lines/north/stations/welding").status_code == 404


def test_a_line_command_pauses_the_whole_site(running: tuple[SiteStack, httpx.Client]) -> None:
    site, client = running
    assert wait_until(lambda: get(client, "/lines/south")["status"] == "online", timeout=60)
    north = site.lines["north"]
    assert north.address is not None
    acks = send_commands(north.address, north.topics, [Command(None, "pause")])
    assert all(ack is not None and ack["accepted"] for ack in acks.values()), acks
    assert site.runner is not None
    assert site.runner.paused
    assert site.plant is not None
    runner, plant = site.runner, site.plant

    def clock_on_the_plants_thread() -> float:
        """The plant's clock, read between two of its runner's rounds: running, each
        round moves it on; paused, the runner goes round and the clock stays."""
        seen: queue.Queue[float] = queue.Queue()
        runner.call_soon(lambda: seen.put(plant.now))
        return seen.get(timeout=60)

    frozen = clock_on_the_plants_thread()
    assert [clock_on_the_plants_thread() for _ in range(3)] == [frozen] * 3
    south = site.lines["south"]
    assert south.address is not None
    send_commands(south.address, south.topics, [Command(None, "resume")])
    assert wait_until(lambda: clock_on_the_plants_thread() > frozen, timeout=60)


def test_a_station_command_reaches_its_own_line_only(
    running: tuple[SiteStack, httpx.Client],
) -> None:
    site, client = running
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert wait_until(lambda: len(get(client, "/lines/south")["stations"]) == 3, timeout=20)

    def command(line_id: str, station_id: str, body: dict[str, Any]) -> httpx.Response:
        # At 600x the acks queue behind the lines' QoS 1 stream: give them time.
        path = f"/lines/{line_id}/stations/{station_id}/commands"
        return client.post(path, json={**body, "timeout_s": 15}, headers=auth, timeout=20)

    answer = command("south", "m1", {"action": "stop"})
    assert answer.status_code == 200, answer.text
    ack = answer.json()
    assert (ack["accepted"], ack["action"]) == (True, "stop")
    south, north = site.lines["south"].plant, site.lines["north"].plant
    assert south is not None
    assert north is not None
    # The stop reaches south's m1 (once its current part is done), never north's.
    assert wait_until(lambda: get(client, "/lines/south/stations/m1")["state"] == "stopped", 20)
    assert south.stations[1].state == "stopped"
    assert north.stations[1].state != "stopped"
    assert get(client, "/lines/north/stations/m1")["state"] != "stopped"
    assert command("south", "m1", {"action": "start"}).json()["accepted"] is True
    assert wait_until(lambda: get(client, "/lines/south/stations/m1")["state"] != "stopped", 20)
    body = {"action": "set_setpoint", "setpoint": "speed", "value": 1.2}
    # Unknown lines and stations are named; no token, no command.
    unknown_line = command("west", "m1", body)
    assert unknown_line.status_code == 404
    assert "lines: north, south" in unknown_line.json()["detail"]
    unknown_station = command("south", "lathe", body)
    assert unknown_station.status_code == 404
    assert "known stations: m0, m1, m2" in unknown_station.json()["detail"]
    assert client.post("/lines/south/stations/m1/commands", json=body).status_code == 401
    # Each line is priced with its own config: south's stop losses at south's
    # labour rate (no energy price, no overhead), north's at nothing.
    economics = get(client, "/lines/south/economics")
    stops = [row for row in economics["pareto"] if row["category"] in ("unplanned", "external")]
    assert stops, economics["pareto"]  # machines that break down every 10 minutes
    assert {row["station"] for row in economics["pareto"]} <= {"m0", "m1", "m2"}
    for row in stops:
        assert row["cost"] == pytest.approx(row["time_s"] * SOUTH_LABOUR_PER_H / 3600), row
    assert get(client, "/lines/north/economics")["money_lost"]["total"] == 0
    assert client.get("/lines/west/economics").status_code == 404


def test_each_line_has_a_history_file_of_its_own() -> None:
    assert line_history_path("/x/history.sqlite3", "north") == "/x/history-north.sqlite3"
    assert line_history_path(None, "north") is None


# -- factory-twin up --site, as users run it -------------------------------------------
def _kinds(messages: list[tuple[str, bytes, bool]], prefix: str) -> Counter[str]:
    kinds: Counter[str] = Counter()
    for topic, payload, _ in messages:
        if not topic.startswith(prefix + "/") or not topic.endswith("/event"):
            continue
        event = json.loads(payload)
        kind = event["event"]
        if kind == "part_finished":
            kind = "part_shipped" if event["exits_line"] else f"part_finished_{event['result']}"
        kinds[kind] += 1
    return kinds


def test_up_site_runs_both_lines_and_each_api_count_equals_its_branch(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(SITE))
    recorder = Recorder(mosquitto.url, f"factory/v1/{SITE_ID}/#")
    api_port = get_free_port()
    env = {**os.environ, "FACTORY_TWIN_SITE": str(path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "up", "--speed", "600", "--mqtt-url", mosquitto.url]
        + ["--api-port", str(api_port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{api_port}"
        assert wait_until(lambda: port_open(api_port), timeout=30), "API never came up"
        client = httpx.Client(base_url=base, timeout=5)

        def produced() -> list[int]:
            return [line["kpis"]["produced"] for line in get(client, "/site")["lines"]]

        assert wait_until(lambda: min(produced()) > 20, timeout=30), produced()
        site = get(client, "/site")
        prefixes = {line["id"]: line["topic_prefix"] for line in site["lines"]}
        assert prefixes == {
            "north": f"factory/v1/{SITE_ID}/hall-1/north",
            "south": f"factory/v1/{SITE_ID}/hall-2/south",
        }
        # Stop the site's clock (a line command pauses every line), then compare.
        topics = LineTopics(site=SITE_ID, area="hall-1", line="north")
        acks = send_commands(parse_mqtt_url(mosquitto.url), topics, [Command(None, "pause")])
        assert all(ack is not None and ack["accepted"] for ack in acks.values()), acks

        def agree(line_id: str) -> bool:
            line = get(client, f"/lines/{line_id}")
            seen = _kinds(recorder.snapshot(), prefixes[line_id])
            started = sum(station["started"] for station in line["stations"])
            return (
                line["kpis"]["good"] == seen["part_shipped"]
                and line["kpis"]["scrap"] == seen["part_finished_scrap"]
                and started == seen["part_started"]
                and seen["part_shipped"] > 0
            )

        for line_id in prefixes:
            assert wait_until(lambda line_id=line_id: agree(line_id), timeout=20), line_id
        # Every message is on one line's branch: the lines do not mix.
        topics_seen = {topic for topic, _, _ in recorder.snapshot()}
        assert all(any(t.startswith(p + "/") for p in prefixes.values()) for t in topics_seen)
        assert all(any(t.startswith(p + "/") for t in topics_seen) for p in prefixes.values())
        client.close()
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=15)
    finally:
        recorder.close()
        if process.poll() is None:
            process.kill()
        output = process.communicate()[0]
    assert code == 0, output
    assert "site works with lines north, south" in output
    assert "Traceback" not in output


def test_up_refuses_a_line_and_a_site_together(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(SITE))
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", "up", "--site", str(path), "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "not both" in result.stderr


def test_up_with_an_invalid_site_names_the_field(tmp_path: Path) -> None:
    broken = json.loads(json.dumps(SITE))
    broken["shared_repair_crews"][0]["lines"].append("west")
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(broken))
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", "up", "--site", str(path), "--api-port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "shared_repair_crews[0].lines[2]: unknown line 'west'" in result.stderr
    assert "Traceback" not in result.stderr
