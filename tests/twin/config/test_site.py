"""A site: its config (lines by file or inline, shared crews, errors that name the
field) and its plant (one environment, a crew shared for real)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import simpy
import yaml
from helpers import REPO

from twin.config.line import ConfigError, load_config
from twin.config.site import SiteConfig, SiteInfo, line_seed, load_site, parse_site
from twin.contract import CREW_ARRIVED_REASON, CREW_WAITING_REASON
from twin.sim.events import StateChangedEvent
from twin.sim.plant import Plant
from twin.sim.report import plant_report
from twin.sim.site_plant import SitePlant, simulate_site

EXAMPLE = REPO / "examples" / "sites" / "two_lines" / "site.yaml"


def busy_line(line_id: str, area: str) -> dict[str, Any]:
    """Three machines in series that break down often: a crew has work."""
    return {
        "line": {"id": line_id, "area": area},
        "stations": [
            {
                "id": f"m{index}",
                "processing_time": {"distribution": "deterministic", "mean_s": 10},
                "failures": {"mtbf_s": 600, "mttr_s": 120},
                **({"input_buffer_capacity": 5} if index else {}),
            }
            for index in range(3)
        ],
        "repair_crew": {"size": 3},
    }


def busy_site(crew_size: int = 1) -> dict[str, Any]:
    return {
        "site": {"id": "works", "name": "Works"},
        "lines": [
            {"inline": busy_line("north", "hall-1")},
            {"inline": busy_line("south", "hall-2")},
        ],
        "shared_repair_crews": [{"id": "fitters", "size": crew_size, "lines": ["north", "south"]}],
    }


def down_time_s(report: Any) -> float:
    return float(sum(station.kpis.down_time_s for station in report.stations))


# -- config -------------------------------------------------------------------------
def test_the_example_site_loads_two_lines_of_one_site_sharing_a_crew() -> None:
    site = load_site(EXAMPLE)
    assert site.site.id == "plant-a"
    assert site.line_ids == ["line1", "cnc-cell"]
    assert {line.line.site for line in site.lines} == {"plant-a"}
    assert [line.line.area for line in site.lines] == ["fabrication", "machining"]
    assert site.line("cnc-cell").line.name == "CNC cell (housings)"
    # Different lines with different products, the same stations as their own files.
    assert site.lines[0].stations == load_config().stations
    assert {p.id for p in site.lines[1].products}.isdisjoint(p.id for p in site.lines[0].products)
    crew = site.crew_of("line1")
    assert crew is not None
    assert crew == site.crew_of("cnc-cell")
    assert (crew.id, crew.size) == ("maintenance", 1)


def test_lines_come_from_files_relative_to_the_site_or_inline_and_can_be_renamed(
    tmp_path: Path,
) -> None:
    (tmp_path / "lines").mkdir()
    (tmp_path / "lines" / "a.yaml").write_text(yaml.safe_dump(busy_line("a", "x")))
    (tmp_path / "site.yaml").write_text(
        yaml.safe_dump(
            {
                "site": {"id": "s9"},
                "lines": [
                    {"config": "lines/a.yaml", "id": "a2", "name": "A two", "area": "y"},
                    {"inline": busy_line("b", "z")},
                    {"config": "default"},
                ],
            }
        )
    )
    site = load_site(tmp_path / "site.yaml")
    assert site.line_ids == ["a2", "b", "line1"]
    assert [(line.line.site, line.line.area) for line in site.lines] == [
        ("s9", "y"),
        ("s9", "z"),
        ("s9", "fabrication"),
    ]
    assert site.lines[0].line.name == "A two"
    assert site.shared_repair_crews == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda d: d["lines"].append({"inline": busy_line("north", "hall-3")}),
            "lines[2].id: line id 'north' is used twice (lines[0] has it)",
        ),
        (
            lambda d: d["shared_repair_crews"][0]["lines"].append("west"),
            "shared_repair_crews[0].lines[2]: unknown line 'west'; "
            "the site's lines are ['north', 'south']",
        ),
        (
            lambda d: d["shared_repair_crews"].append({"id": "b", "size": 2, "lines": ["south"]}),
            "shared_repair_crews[1].lines[0]: line 'south' is already served by crew 'fitters'",
        ),
        (
            lambda d: d["shared_repair_crews"][0].update(size=0),
            "shared_repair_crews[0].size: Input should be greater than or equal to 1",
        ),
        (
            lambda d: d["shared_repair_crews"][0].update(sizes=2),
            "shared_repair_crews[0].sizes: unknown field",
        ),
        (
            lambda d: d["lines"][0].update(config="default"),
            "lines[0]: give either config (a file) or inline (a line config), not both",
        ),
        (
            lambda d: d["lines"][1]["inline"]["stations"][0].pop("processing_time"),
            "lines[1].inline: stations[0].processing_time: required field is missing",
        ),
        (lambda d: d["lines"][0].update(id="North!"), "lines[0].id: String should match"),
        (lambda d: d.pop("site"), "site: required field is missing"),
    ],
    ids=[
        "duplicate-line",
        "unknown-crew-line",
        "two-crews",
        "empty-crew",
        "misspelt",
        "two-sources",
        "bad-inline-line",
        "bad-id",
        "no-site",
    ],
)
def test_invalid_sites_fail_naming_the_field(change: Any, expected: str) -> None:
    data = busy_site()
    change(data)
    with pytest.raises(ConfigError) as error:
        parse_site(data, "site.yaml")
    assert expected in str(error.value)
    assert str(error.value).startswith("site.yaml")


def test_a_missing_line_file_names_the_entry_and_the_file(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump({"site": {"id": "s"}, "lines": [{"config": "nope.yaml"}]}))
    with pytest.raises(ConfigError, match=r"lines\[0\]\.config: .*nope\.yaml: config file not"):
        load_site(path)
    with pytest.raises(ConfigError, match="site file not found"):
        load_site(tmp_path / "absent.yaml")


def test_every_line_is_placed_in_the_site_whatever_its_own_file_says() -> None:
    data = busy_site()
    data["lines"][0]["inline"]["line"]["site"] = "elsewhere"
    assert {line.line.site for line in parse_site(data).lines} == {"works"}
    # A resolved site checks it too (the default line says plant-a).
    with pytest.raises(ValueError, match=r"lines\[0\]\.line\.site: 'plant-a' is not this site"):
        SiteConfig(site=SiteInfo(id="works"), lines=[load_config()])


def test_separate_crews_give_each_line_a_crew_of_the_same_size() -> None:
    site = parse_site(busy_site(crew_size=2)).separate_crews()
    assert site.shared_repair_crews == []
    assert [line.repair_crew.size for line in site.lines if line.repair_crew] == [2, 2]


# -- plant --------------------------------------------------------------------------
def test_the_lines_of_a_site_run_in_one_environment_and_queue_for_one_crew() -> None:
    plant = SitePlant(parse_site(busy_site()), seed=4)
    north, south = plant.plants["north"], plant.plants["south"]
    assert north.env is south.env is plant.env
    assert north.repair_crew is not None
    assert south.repair_crew is not None
    assert north.repair_crew is not south.repair_crew  # each line's share, tallied apart
    assert plant.crew_shares["north"].crew is plant.crew_shares["south"].crew
    assert plant.crews["fitters"].capacity == 1
    plant.run(until=8 * 3600)
    assert north.now == south.now == 8 * 3600
    assert north.parts_shipped > 0
    assert south.parts_shipped > 0


def test_without_shared_resources_each_line_runs_exactly_as_it_runs_alone() -> None:
    site = parse_site(busy_site()).separate_crews()
    together = simulate_site(site, hours=8, seed=11)
    for config in site.lines:
        alone = Plant(config, seed=line_seed(11, config.line.id))
        alone.run(until=8 * 3600)
        report = plant_report(alone, seed=line_seed(11, config.line.id), hours=8)
        assert together[config.line.id].model_dump() == report.model_dump()


def test_a_site_run_is_deterministic_and_each_line_has_its_own_seed() -> None:
    site = parse_site(busy_site())
    first = simulate_site(site, hours=4, seed=7)
    again = simulate_site(site, hours=4, seed=7)
    assert {k: v.model_dump_json() for k, v in first.items()} == {
        k: v.model_dump_json() for k, v in again.items()
    }
    other = simulate_site(site, hours=4, seed=8)
    assert first["north"].model_dump_json() != other["north"].model_dump_json()
    assert line_seed(7, "north") != line_seed(7, "south")
    # Identical lines, different seeds: different runs.
    assert first["north"].line_kpis.good != first["south"].line_kpis.good


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_shared_crew_lowers_every_lines_availability_against_separate_crews(seed: int) -> None:
    """One fitter for both lines against one fitter per line, with the same seeds:
    machines wait while the fitter repairs the other line, so every line is down
    longer, less available and ships less."""
    site = parse_site(busy_site(crew_size=1))
    shared_plant = SitePlant(site, seed=seed)
    shared_plant.run(until=8 * 3600)
    shared = shared_plant.reports(8)
    separate = simulate_site(site.separate_crews(), hours=8, seed=seed)
    for line_id in site.line_ids:
        waited = shared_plant.crew_waits()[line_id]
        assert waited.waits > 10
        # Both runs meet the same failures (each machine has its own random stream),
        # so the comparison is paired: the waits for the fitter show as down time.
        assert down_time_s(shared[line_id]) > down_time_s(separate[line_id])
        assert down_time_s(shared[line_id]) >= waited.wait_s
        shared_availability = shared[line_id].line_kpis.availability
        separate_availability = separate[line_id].line_kpis.availability
        assert shared_availability is not None
        assert separate_availability is not None
        assert shared_availability < separate_availability
        assert shared[line_id].line_kpis.good < separate[line_id].line_kpis.good


def test_a_shared_crew_of_enough_technicians_costs_nothing() -> None:
    """Six fitters for six machines: nobody ever waits, the sharing is invisible."""
    site = parse_site(busy_site(crew_size=6))
    plant = SitePlant(site, seed=5)
    plant.run(until=8 * 3600)
    assert all(waited.waits == 0 for waited in plant.crew_waits().values())
    alone = simulate_site(site.separate_crews(), hours=8, seed=5)
    shared = plant.reports(8)
    for line_id in site.line_ids:
        # Same seeds, nobody waits: byte for byte the same run as with crews of their own.
        assert shared[line_id].model_dump() == alone[line_id].model_dump()


def test_a_plant_takes_a_crew_from_outside_and_keeps_its_own_otherwise() -> None:
    config = load_config()
    env = simpy.Environment()
    crew = simpy.Resource(env, capacity=1)
    assert Plant(config, env=env, repair_crew=crew).repair_crew is crew
    own = Plant(config).repair_crew
    assert isinstance(own, simpy.Resource)
    assert own.capacity == 2  # the default line's repair_crew


def test_a_machine_waiting_for_the_crew_says_so_and_says_when_it_came() -> None:
    """Every wait the shared crew's tally (the simulator's ground truth) counts is
    announced: ``down`` to ``down`` with CREW_WAITING_REASON when the machine
    queues, then with CREW_ARRIVED_REASON when a technician reaches it, and the
    time between them is the time the tally says the line waited."""
    plant = SitePlant(parse_site(busy_site()), seed=6)
    said: dict[str, list[StateChangedEvent]] = {line: [] for line in plant.plants}
    for line, line_plant in plant.plants.items():
        line_plant.add_listener(
            lambda event, line=line: (
                said[line].append(event)
                if isinstance(event, StateChangedEvent) and event.from_state == event.to_state
                else None
            )
        )
    plant.run(until=24 * 3600)
    for line, events in said.items():
        tally = plant.crew_shares[line].tally
        assert tally.waits > 0, line
        assert all(e.from_state == "down" for e in events)
        waiting: dict[tuple[str, int], float] = {}
        waited = 0.0
        for event in events:
            key = (event.station, event.machine)
            if event.reason == CREW_WAITING_REASON:
                assert key not in waiting
                waiting[key] = event.time
            else:
                assert event.reason == CREW_ARRIVED_REASON
                waited += event.time - waiting.pop(key)
        arrived = sum(e.reason == CREW_ARRIVED_REASON for e in events)
        still_waiting = len(waiting)  # queued when the run stopped
        assert arrived + still_waiting == tally.waits
        assert waited == pytest.approx(tally.wait_s)
