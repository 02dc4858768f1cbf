"""A twin that joins a running line (restarted, or ``--twin-only`` against a line
already at work) gets the retained messages first, as a broker hands them to a
new subscriber: the birth, and each station's state with the time it began,
maybe hours before. Its window opens with the first message of the live stream,
and every figure is over that window: a state that began before it counts from
there, so no station is down longer than the twin watched.

It does not see the parts already inside either. Part ids grow with
release, so one that leaves with an id below the first release the twin saw was
inside all along: once it shows itself, the twin counts it in its WIP from its
own start. So, once the parts that were inside at the join have left, the twin's
WIP is the plant's, and its mean WIP is the plant's over the same window.

The plant measures the window from its own memory (its statistics reset at the
join), which the twin never reads. Tolerance: as in test_live_lead_time, the
twin's clock may trail the plant's by ``lag``, which moves its integral by at most
(WIP at the end + L) x lag over the window.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import cast

import paho.mqtt.client as mqtt
import pytest
from helpers import MemoryClient

from sensors.ingest import Ingest
from sensors.mqtt import new_client
from sensors.publisher import PlantPublisher
from sensors.topics import LineTopics
from twin.config.line import load_config
from twin.sim.plant import Plant
from twin.sim.report import plant_report
from twin.state.line import TwinState

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "lines"


@pytest.mark.parametrize(
    ("path", "join_h", "end_h", "seed"),
    [
        pytest.param(None, 6.0, 14.0, 4, id="default-4"),
        pytest.param(EXAMPLES / "smt.yaml", 5.0, 11.0, 9, id="smt-9"),
    ],
)
def test_a_twin_that_joins_a_running_line_finds_the_parts_already_inside(
    path: Path | None, join_h: float, end_h: float, seed: int
) -> None:
    config = load_config(path)
    line = config.line
    topics = LineTopics(line.site, line.area, line.id)
    twin = TwinState(line.site, line.area, line.id)
    ingest = Ingest(twin, topics, new_client("unused"))
    joined = False

    def deliver(topic: str, payload: bytes) -> None:
        if joined:
            ingest.handle(topic, payload)

    plant = Plant(config, seed=seed)
    client = MemoryClient(deliver)
    publisher = PlantPublisher(plant, cast(mqtt.Client, client), topics, rng=random.Random(seed))
    publisher.attach()
    publisher.announce()
    plant.run(until=join_h * 3600)
    inside_at_join = plant.work_in_process
    assert inside_at_join > 0, "the line has parts inside when the twin joins"
    # The broker hands a new subscriber the last retained message of each topic.
    retained = {topic: payload for topic, payload, _, retain in client.messages if retain}
    states = [topic for topic in retained if topic.endswith("/state")]
    assert len(states) == len(config.stations)
    joined = True
    plant.reset_statistics()
    for topic, payload in retained.items():
        ingest.handle(topic, payload)
    plant.run(until=end_h * 3600)

    kpis = twin.view().kpis
    assert kpis.work_in_process == plant.work_in_process, (kpis.work_in_process, inside_at_join)
    view = twin.view()
    assert view.sim_time_s is not None
    lag = plant.now - view.sim_time_s
    assert 0 <= lag <= 2 * config.sensors.telemetry_period_s
    assert kpis.mean_wip is not None
    plant_mean = plant.mean_wip()
    allowed = (plant.work_in_process + plant_mean) * lag / kpis.observed_s + 1e-9
    assert kpis.mean_wip == pytest.approx(plant_mean, abs=allowed)

    # The window is the time the twin watched: from its first live message (the
    # first telemetry after the join, within a sampling period) to its clock.
    window = plant.now - plant.statistics_since
    period = config.sensors.telemetry_period_s
    assert window - lag - period <= kpis.observed_s <= window - lag
    report = plant_report(plant, seed=seed, hours=end_h - join_h)
    assert (kpis.good, kpis.scrap) == (report.line_kpis.good, report.line_kpis.scrap)
    for station in view.stations:
        times = station.kpis
        spent = (
            times.actual_production_time_s
            + times.setup_time_s
            + times.maintenance_time_s
            + times.down_time_s
            + times.starved_time_s
            + times.blocked_time_s
            + times.stopped_time_s
            + times.planned_downtime_s
        )
        # Machine-seconds in some state: no more than each machine watched.
        assert spent <= kpis.observed_s * times.machines + 1e-6, (station.id, spent)
        assert spent >= (kpis.observed_s - period) * times.machines, (station.id, spent)
        assert times.availability is not None
        assert 0.0 <= times.availability <= 1.0 + 1e-9, (station.id, times)
