"""The twin fed over Sparkplug B is the twin fed over JSON.

Two stacks share Debian's mosquitto: one runs the live plant with both outputs on
(the JSON tree and the Sparkplug B edge node) and its twin reads the JSON tree;
the other is a twin only (``up --twin-only`` with ``FACTORY_TWIN_SOURCE=sparkplug``)
and reads the edge node. Once the line stops and both twins have caught up with
its last heartbeat, they must agree on every station's counts and state and on
every KPI. On the default line and the CNC cell, each on two seeds.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO, Mosquitto, plant_clock, wait_until

from api.runtime.line import Stack
from api.runtime.options import StackOptions
from twin.config.line import LineConfig, load_config
from twin.state.line import TwinState

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LINE_HOURS = 3.0


def _cnc_cell() -> LineConfig:
    return load_config(REPO / "examples" / "lines" / "cnc_cell.yaml")


def _options(url: str, seed: int, history: Path, **extra: Any) -> StackOptions:
    return StackOptions(
        speed=2000,
        seed=seed,
        mqtt_url=url,
        scoring_period_s=0,
        first_training=False,
        forecast_period_s=0,
        history_path=str(history),
        **extra,
    )


def caught_up(twin: TwinState, line_time: float) -> bool:
    lag = twin.lag()
    return lag.lag_messages == 0 and lag.held == 0 and lag.as_of_s == lag.newest_s == line_time


def stations(twin: TwinState) -> list[tuple[Any, ...]]:
    return [
        (s.id, s.started, s.good, s.scrap, s.rework, s.state, [m.state for m in s.machines])
        for s in twin.view().stations
    ]


@pytest.mark.parametrize("seed", [3, 8])
@pytest.mark.parametrize("make_config", [load_config, _cnc_cell], ids=["default", "cnc_cell"])
def test_the_twin_over_sparkplug_is_the_twin_over_json(
    mosquitto: Mosquitto, tmp_path: Path, make_config: Callable[[], LineConfig], seed: int
) -> None:
    config = make_config()
    reader = Stack(
        config,
        _options(
            mosquitto.url, seed, tmp_path / "reader.sqlite3", run_plant=False, source="sparkplug"
        ),
    )
    reader.start()
    line = Stack(config, _options(mosquitto.url, seed, tmp_path / "line.sqlite3", sparkplug=True))
    try:
        line.start()
        assert wait_until(lambda: plant_clock(line) >= LINE_HOURS * 3600, timeout=120)
        line.stop_plant()
        assert line.plant is not None
        end = line.plant.now
        # The last heartbeat says all is published: each twin waits for every message.
        assert wait_until(lambda: caught_up(line.twin, end) and caught_up(reader.twin, end), 30)
        json_twin, spb_twin = line.twin, reader.twin
        assert stations(spb_twin) == stations(json_twin)
        assert sum(s.good for s in json_twin.view().stations) > 0
        assert spb_twin.kpi_view() == json_twin.kpi_view()
        assert reader.ingest is not None
        assert line.ingest is not None
        spb_health, json_health = reader.ingest.health(), line.ingest.health()
        assert spb_health["accepted"] == json_health["accepted"]
        assert spb_health["gaps"] == json_health["gaps"] == 0
        assert spb_health["sparkplug"]["seq_gaps"] == 0
        assert sum(spb_health["sparkplug"]["dropped"].values()) == 0
    finally:
        line.stop()
        reader.stop()


def _site_line(line_id: str, mean_s: float) -> dict[str, Any]:
    return {
        "line": {"id": line_id, "area": "hall"},
        "stations": [
            {
                "id": f"m{index}",
                "processing_time": {"distribution": "exponential", "mean_s": mean_s},
                "failures": {"mtbf_s": 1800, "mttr_s": 120},
                "defect_probability": 0.03,
                **({"input_buffer_capacity": 4} if index else {}),
            }
            for index in range(3)
        ],
    }


def test_a_sites_lines_are_edge_nodes_of_one_group_and_each_twin_reads_its_own(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """``up --site --sparkplug``: two lines of one area are two edge nodes of one
    Sparkplug group ({site}:{area}); a twin of each, fed over Sparkplug B alone,
    equals that line's twin over JSON, so neither reads the other's node."""
    from api.runtime.site import SiteStack
    from twin.config.site import parse_site

    site = parse_site(
        {
            "site": {"id": "works"},
            "lines": [{"inline": _site_line("north", 20)}, {"inline": _site_line("south", 30)}],
        }
    )
    readers = {
        config.line.id: Stack(
            config,
            _options(
                mosquitto.url,
                4,
                tmp_path / f"reader-{config.line.id}.sqlite3",
                run_plant=False,
                source="sparkplug",
            ),
        )
        for config in site.lines
    }
    for reader in readers.values():
        reader.start()
    plant = SiteStack(site, _options(mosquitto.url, 4, tmp_path / "site.sqlite3", sparkplug=True))
    try:
        plant.start()
        nodes = {line_id: stack.sparkplug for line_id, stack in plant.lines.items()}
        assert all(node is not None for node in nodes.values())
        assert {(n.ids.group, n.ids.node) for n in nodes.values() if n is not None} == {
            ("works:hall", "north"),
            ("works:hall", "south"),
        }
        assert wait_until(lambda: plant_clock(plant) >= LINE_HOURS * 3600, timeout=120)
        plant.stop_plant()
        assert plant.plant is not None
        end = plant.plant.now
        for line_id, reader in readers.items():
            json_twin, spb_twin = plant.lines[line_id].twin, reader.twin
            assert wait_until(
                lambda a=json_twin, b=spb_twin: caught_up(a, end) and caught_up(b, end), 30
            )
            assert stations(spb_twin) == stations(json_twin)
            assert sum(s.good for s in json_twin.view().stations) > 0
            assert spb_twin.kpi_view() == json_twin.kpi_view()
            assert reader.ingest is not None
            health = reader.ingest.health()["sparkplug"]
            assert health["seq_gaps"] == 0
            assert health["births"] == 1
            assert sum(health["dropped"].values()) == 0
        # Two lines, two different twins: each read its own node.
        assert stations(readers["north"].twin) != stations(readers["south"].twin)
    finally:
        plant.stop()
        for reader in readers.values():
            reader.stop()
