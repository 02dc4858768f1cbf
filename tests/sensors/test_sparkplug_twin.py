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
