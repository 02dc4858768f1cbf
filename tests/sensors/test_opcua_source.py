"""A twin of a line that speaks OPC UA: the project's plant served over OPC UA, the
same run watched twice, once over MQTT and once over OPC UA alone, the second
joining a line that has made parts. At every station the second twin counts every
part made after it joined, and shows the line's count before it apart, so that the
two add up to the server's; a bad map is refused naming the field; odd values
from the server are counted and never stop the twin."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from helpers import cli_main, get_free_port, wait_until

from api.app import create_app
from api.runtime.line import Stack
from api.runtime.options import StackOptions
from sensors.opcua.nodes import line_map
from sensors.opcua.source import OpcUaSource
from sensors.opcua.source_map import load_map, parse_map
from sensors.topics import LineTopics
from twin.config.line import ConfigError, LineConfig, load_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def counts(stack: Stack) -> dict[str, tuple[int, int, int, int]]:
    return {
        station.id: (station.started, station.good, station.scrap, station.rework)
        for station in stack.twin.view().stations
    }


def server_counts(stack: Stack, config: LineConfig) -> dict[str, tuple[int, int, int, int]]:
    server = stack.opcua
    assert server is not None
    # The server's own counters, read off its tallies (the o6 test reads them as a client).
    tally = server._counts
    return {
        spec.id: tuple(  # type: ignore[misc]
            tally.get((spec.id, name), 0)
            for name in ("PartsStarted", "PartsGood", "PartsScrap", "PartsRework")
        )
        for spec in config.stations
    }


@pytest.fixture
def plant_with_opcua(request: pytest.FixtureRequest) -> Iterator[tuple[Stack, LineConfig]]:
    template, seed = request.param
    config = load_config(ROOT / template)
    stack = Stack(
        config,
        StackOptions(
            speed=300,
            seed=seed,
            mqtt_port=get_free_port(),
            opcua=True,
            opcua_port=get_free_port(),
            opcua_anonymous=True,
        ),
    )
    stack.start()
    try:
        yield stack, config
    finally:
        stack.stop()


@pytest.mark.parametrize(
    ("plant_with_opcua", "filed"),
    [(("twin/lines/default.yaml", 11), True), (("examples/lines/cnc_cell.yaml", 23), False)],
    indirect=["plant_with_opcua"],
    ids=["default-filed", "cnc-unfiled"],
)
def test_the_twin_over_opcua_counts_what_the_twin_over_mqtt_counts(
    plant_with_opcua: tuple[Stack, LineConfig], filed: bool, tmp_path: Path
) -> None:
    plant, config = plant_with_opcua
    assert plant.opcua is not None
    map_file = tmp_path / "map.yaml"
    written = yaml.safe_dump(line_map(config), sort_keys=False)
    if not filed:
        # The other way to name a namespace: each node id carries its URI (nsu=).
        uri = line_map(config)["namespace_uri"]
        written = written.replace("ns={ns};", f"nsu={uri};").replace(f"namespace_uri: {uri}\n", "")
        assert "{ns}" not in written
        assert "namespace_uri" not in written
    map_file.write_text(written)
    info = config.line
    twin = Stack(
        config if filed else None,
        StackOptions(
            run_plant=False,
            opcua_source=plant.opcua.endpoint,
            opcua_map=str(map_file),
            first_training=False,
        ),
        line_ref=None if filed else (info.site, info.area, info.id),
    )
    # The twin joins a line that has made parts: those are not the twin's.
    assert plant.runner is not None
    first = config.stations[0].id
    assert wait_until(lambda: counts(plant).get(first, (0, 0, 0, 0))[0] >= 2, timeout=240)
    plant.runner.pause()
    twin.start()
    try:
        assert twin.opcua_source is not None
        assert twin.opcua_source.connected.wait(30), twin.opcua_source.health()
        joined = server_counts(plant, config)
        plant.runner.resume()
        last = config.stations[-1].id
        # Let the line make parts at every station, then stop it: the counts settle.
        assert wait_until(lambda: counts(plant).get(last, (0, 0, 0, 0))[1] >= 5, timeout=240)
        plant.stop_plant()
        expected = server_counts(plant, config)
        assert wait_until(lambda: counts(plant) == expected, timeout=60), (counts(plant), expected)

        def before(station: str) -> tuple[int, ...]:
            assert twin.opcua_source is not None
            shown = twin.opcua_source.health()["before_twin"]
            return tuple(
                shown.get(f"{station}: {name}", 0)
                for name in ("started", "good", "scrap", "rework")
            )

        def with_before() -> dict[str, tuple[int, ...]]:
            return {
                station: tuple(a + b for a, b in zip(seen, before(station), strict=True))
                for station, seen in counts(twin).items()
            }

        # Every part is either the twin's or shown as made before it, and the twin
        # has every part made after it joined. The whole health in the message (a
        # tuple's repr is cut short): what the source refused and why, if it fell behind.
        assert wait_until(lambda: with_before() == expected, timeout=60), (
            f"twin {counts(twin)} + before {twin.opcua_source.health()['before_twin']} != "
            f"server {expected}; source health "
            f"{json.dumps(twin.opcua_source.health(), default=str)}; ingest health "
            f"{json.dumps(twin.ingest.health() if twin.ingest else None, default=str)}"
        )
        for station, seen in counts(twin).items():
            since = tuple(e - j for e, j in zip(expected[station], joined[station], strict=True))
            assert all(s >= n for s, n in zip(seen, since, strict=True)), (station, seen, since)
        assert sum(before(first)) > 0, "the line had made parts before the twin joined"
        assert sum(started for started, *_ in expected.values()) > 0
        # The states came too: each station has one, as over MQTT.
        states = {station.id: station.state for station in twin.twin.view().stations}
        assert all(state is not None for state in states.values()), states
        # /healthz shows the source: connected, nothing refused, nothing held.
        with TestClient(create_app(stack=twin)) as client:
            health = client.get("/healthz").json()["opcua_source"]
        assert health["endpoint"] == plant.opcua.endpoint
        assert health["connected"] is True
        assert health["fed"] > 0
        assert health["refused"] == 0, health
        assert health["waiting_for_clock"] == 0
        assert health["unknown_states"] == {}
        assert health["counter_resets"] == 0
    finally:
        twin.stop()


def test_a_bad_map_is_refused_naming_the_field(tmp_path: Path) -> None:
    good = line_map(load_config(None))
    bad: dict[str, Any] = yaml.safe_load(yaml.safe_dump(good))
    first = next(iter(bad["stations"]))
    bad["stations"][first]["sensors"]["temprature_c"] = bad["stations"][first]["sensors"].pop(
        "temperature_c"
    )
    with pytest.raises(ConfigError, match=rf"stations\.{first}.*temprature_c"):
        parse_map(bad, "map.yaml")
    bad = yaml.safe_load(yaml.safe_dump(good))
    bad["stations"][first]["counters"]["good"] = "PartsGood"
    with pytest.raises(ConfigError, match=rf"stations\.{first}\.counters\.good"):
        parse_map(bad, "map.yaml")
    bad = yaml.safe_load(yaml.safe_dump(good))
    station = bad["stations"][first]
    station["sensors"]["vibration_mm_s"] = station["state"]
    with pytest.raises(ConfigError) as twice:
        parse_map(bad, "map.yaml")
    assert f"stations.{first}.sensors.vibration_mm_s" in str(twice.value)
    assert f"is also stations.{first}.state" in str(twice.value)
    bad = yaml.safe_load(yaml.safe_dump(good))
    del bad["namespace_uri"]
    with pytest.raises(ConfigError, match="namespace_uri"):
        parse_map(bad, "map.yaml")
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="not found"):
        load_map(missing)


def test_up_with_an_opcua_source_checks_its_flags_and_map(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACTORY_TWIN_API_TOKEN", "test-token-0123456789abcdef")
    monkeypatch.setenv("FACTORY_TWIN_HISTORY_PATH", str(tmp_path / "history.sqlite3"))
    port = str(get_free_port())
    assert (
        cli_main(
            "up", "--twin-only", "--opcua-source", "opc.tcp://127.0.0.1:4840", "--api-port", port
        )
        == 2
    )
    assert "--opcua-map" in capsys.readouterr().err
    map_file = tmp_path / "map.yaml"
    map_file.write_text("line: {site: a, area: b, id: c}\nstations: {}\n")
    code = cli_main(
        "up",
        "--twin-only",
        "--opcua-source",
        "opc.tcp://127.0.0.1:4840",
        "--opcua-map",
        str(map_file),
        "--api-port",
        port,
    )
    assert code == 2
    assert "stations" in capsys.readouterr().err
    code = cli_main(
        "up", "--opcua-source", "opc.tcp://127.0.0.1:4840", "--opcua-map", str(map_file)
    )
    assert code == 2
    assert "--twin-only" in capsys.readouterr().err


def test_odd_values_from_the_server_are_counted_and_the_source_carries_on() -> None:
    config = load_config(None)
    source_map = parse_map(line_map(config))
    fed: list[tuple[str, bytes]] = []
    topics = LineTopics(config.line.site, config.line.area, config.line.id)
    source = OpcUaSource(
        "opc.tcp://127.0.0.1:1", source_map, topics, lambda t, p: fed.append((t, p)) or True
    )
    from sensors.opcua.source import _Binding

    station = config.stations[0].id
    source.on_change(_Binding("clock"), 100.0, None)
    # A sensor's infinity goes as null, which the ingest refuses (here: fed as is).
    source.on_change(_Binding("sensor", station, "temperature_c"), float("inf"), None)
    assert b'"temperature_c":null' in fed[-1][1]
    # A state the map does not know is counted, not fed.
    before = len(fed)
    source.on_change(_Binding("state", station), "exploded", None)
    assert len(fed) == before
    assert source.stats.unknown_states[f"{station}: exploded"] == 1
    # The first read is what the line made before the twin: shown, not its parts.
    source.on_change(_Binding("counter", station, "good"), 4, None)
    assert len(fed) == before
    assert source.health()["before_twin"] == {f"{station}: good": 4}
    source.on_change(_Binding("counter", station, "good"), 14, None)
    made = len(fed)
    assert made == before + 10  # ten parts since
    # A counter that goes back is a reset: followed from there, no parts made up.
    source.on_change(_Binding("counter", station, "good"), 3, None)
    assert len(fed) == made
    assert source.stats.counter_resets == 1
    source.on_change(_Binding("counter", station, "good"), 5, None)
    assert len(fed) == made + 2
    # A string where a count belongs is refused and counted.
    source.on_change(_Binding("counter", station, "good"), "lots", None)
    assert source.stats.refused == 1


def test_values_before_the_clocks_first_reading_are_held_and_stamped_with_it() -> None:
    """A subscription's first notification carries one value per node, in no set
    order. Those that come before the clock node's must not go out stamped at time
    0 of a line that has run for hours: the twin would judge the line's next
    messages against that 0 and refuse them as from the future."""
    from sensors.opcua.source import _Binding

    config = load_config(ROOT / "examples/lines/cnc_cell.yaml")
    source_map = parse_map(line_map(config))
    assert source_map.clock is not None
    fed: list[dict[str, Any]] = []
    topics = LineTopics(config.line.site, config.line.area, config.line.id)
    source = OpcUaSource(
        "opc.tcp://127.0.0.1:1",
        source_map,
        topics,
        lambda t, p: fed.append(json.loads(p)) or True,
    )
    station = config.stations[0].id
    source.on_change(_Binding("status"), "online", None)
    source.on_change(_Binding("speed"), 300.0, None)
    source.on_change(_Binding("state", station), "running", None)
    source.on_change(_Binding("counter", station, "started"), 0, None)
    source.on_change(_Binding("counter", station, "started"), 4, None)
    source.on_change(_Binding("sensor", station, "temperature_c"), 41.5, None)
    assert fed == []
    assert source.health()["waiting_for_clock"] == 6
    clock = 7_321.5
    source.on_change(_Binding("clock"), clock, None)
    assert source.health()["waiting_for_clock"] == 0
    # Every held value went out, in the order it came, at the clock's time.
    assert [message["sim_time_s"] for message in fed] == [clock] * len(fed)
    assert fed[0]["status"] == "online"
    assert fed[1]["speed_factor"] == 300.0
    assert sum(message.get("event") == "part_started" for message in fed) == 4
    assert any(message.get("to_state") == "running" for message in fed)
    assert fed[-1].get("temperature_c") == 41.5
    # From then on, values go out as they come.
    source.on_change(_Binding("sensor", station, "temperature_c"), 42.0, None)
    assert fed[-1]["temperature_c"] == 42.0


def test_a_clock_that_leapt_is_the_lines_and_its_parts_are_counted() -> None:
    """The twin judges each message's time against the latest reference of the
    line's time, at the pace the line announced. A twin held up for a while then
    gets the clock far ahead at once; the status the source sends again as the
    clock moves makes that the line's time, so the parts that come with it count,
    as they do over MQTT, whose line sends a heartbeat."""
    from sensors.ingest import Ingest
    from sensors.mqtt import new_client
    from sensors.opcua.source import STATUS_EVERY_S, _Binding
    from twin.state.line import TwinState

    config = load_config(ROOT / "examples/lines/cnc_cell.yaml")
    info = config.line
    topics = LineTopics(info.site, info.area, info.id)
    twin = TwinState(info.site, info.area, info.id)
    ingest = Ingest(twin, topics, new_client("unused"))
    wall = [100.0]
    source = OpcUaSource(
        "opc.tcp://127.0.0.1:1",
        parse_map(line_map(config)),
        topics,
        ingest.handle,
        monotonic=lambda: wall[0],
    )
    station = config.stations[0].id
    source.on_change(_Binding("clock"), 0.0, None)
    source.on_change(_Binding("status"), "online", None)
    source.on_change(_Binding("speed"), 1.0, None)  # a line that says it runs in real time
    source.on_change(_Binding("counter", station, "started"), 0, None)
    source.on_change(_Binding("counter", station, "started"), 2, None)
    # Held up for a while: the clock comes 5,000 line seconds on in one step.
    wall[0] += 2 * STATUS_EVERY_S
    source.on_change(_Binding("clock"), 5_000.0, None)
    source.on_change(_Binding("counter", station, "started"), 7, None)
    started = {view.id: view.started for view in twin.view().stations}
    assert started[station] == 7, (started, twin.rejected())
    assert twin.rejected()["future_time"] == 0
    # A clock that does not move sends no status again; one within the second neither.
    fed = source.stats.fed
    source.on_change(_Binding("clock"), 5_000.0, None)
    wall[0] += STATUS_EVERY_S / 2
    source.on_change(_Binding("clock"), 5_010.0, None)
    assert source.stats.fed == fed


def test_the_map_in_the_docs_is_a_valid_map() -> None:
    text = (ROOT / "docs" / "opcua.md").read_text()
    section = text[text.index("### The map") :]
    block = section[
        section.index("```yaml") + len("```yaml") : section.index(
            "```", section.index("```yaml") + 7
        )
    ]
    source_map = parse_map(yaml.safe_load(block), "docs/opcua.md")
    assert list(source_map.stations) == ["press", "pack"]
    assert source_map.stations["press"].state_values["2"] == "down"
    assert source_map.exits_line("pack")
    assert not source_map.exits_line("press")
