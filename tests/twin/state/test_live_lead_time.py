"""The live twin's WIP and lead time, by Little's law on its own counts, against the plant.

The twin is fed through the plant's publisher and the real ingest
(``feeding.feed_twin``); the plant measures the same run from its own memory,
which the twin never reads. The twin integrates its WIP (released - shipped -
scrapped) over its clock, so L = that integral / the observed time, and
W = L / lambda with lambda the parts leaving (shipped or scrapped) per second:
W = the integral / the parts that left.

Tolerances, derived (A(t) is the WIP integral up to t, T the plant's clock, t
the twin's, lag = T - t, WIP_T the parts inside at the end):

- every message reaches the twin in order, so its WIP changes when the plant's
  does and A_twin(t) = A_plant(T) - WIP_T x lag. Hence
  |L_twin - L_plant| <= (WIP_T + L_plant) x lag / t.
- Little's law over [0, T]: A_plant(T) = the time in system of the parts that
  left + the age of the parts still inside. So W_twin differs from the plant's
  measured mean time in system by at most (that age + WIP_T x lag) / exits;
  the age is ``Plant.littles_law_boundary_s`` (an exact bound, not a guess).
- the plant's cycle time is that of shipped parts only; scrapped parts leave
  after another time in system. The twin's W is the mean over both, so it may
  differ from the shipped parts' by the scrapped share times the gap between
  the two means, computed from the plant's own report.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from feeding import feed_twin

from twin.config.line import load_config
from twin.sim.report import plant_report

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples" / "lines"
# Bottling makes ~5,000 messages a simulated minute through the codec: 2 h of it.
CASES = [
    pytest.param(None, 8.0, 1, id="default-1"),
    pytest.param(None, 8.0, 2, id="default-2"),
    pytest.param(EXAMPLES / "cnc_cell.yaml", 16.0, 1, id="cnc_cell-1"),
    pytest.param(EXAMPLES / "cnc_cell.yaml", 16.0, 2, id="cnc_cell-2"),
    pytest.param(EXAMPLES / "smt.yaml", 8.0, 3, id="smt-3"),
    pytest.param(EXAMPLES / "bottling.yaml", 2.0, 1, id="bottling-1"),
]


@pytest.mark.parametrize(("path", "hours", "seed"), CASES)
def test_live_wip_and_lead_time_agree_with_the_plants_measurement(
    path: Path | None, hours: float, seed: int
) -> None:
    config = load_config(path)
    fed = feed_twin(hours, seed=seed, config=config)
    view = fed.twin.view()
    report = plant_report(fed.plant, seed=seed, hours=hours)
    plant, twin, law = report.line_kpis, view.kpis, report.littles_law

    assert view.sim_time_s is not None
    assert view.sim_time_s - twin.observed_s == 0.0, "the twin heard the run from its start"
    clock = view.sim_time_s
    lag = fed.plant.now - clock
    assert 0 <= lag <= 2 * config.sensors.telemetry_period_s
    assert (twin.good, twin.scrap, twin.work_in_process) == (
        plant.good,
        plant.scrap,
        plant.work_in_process,
    )
    exits = plant.good + plant.scrap
    assert exits > 0
    inside = plant.work_in_process

    assert twin.mean_wip is not None
    assert plant.mean_wip is not None
    assert twin.mean_wip > 0
    allowed_wip = (inside + plant.mean_wip) * lag / clock + 1e-9
    assert twin.mean_wip == pytest.approx(plant.mean_wip, abs=allowed_wip)

    assert twin.cycle_time_s is not None
    assert law.mean_time_in_system_s is not None
    allowed_w = (fed.plant.littles_law_boundary_s() + inside * lag) / exits + 1e-9
    assert twin.cycle_time_s == pytest.approx(law.mean_time_in_system_s, abs=allowed_w)
    # Little's law holds for the twin's figures by construction: L = lambda W.
    exit_rate = exits / twin.observed_s
    assert twin.mean_wip == pytest.approx(exit_rate * twin.cycle_time_s, rel=1e-9)

    assert plant.cycle_time_s is not None
    if plant.scrap:
        scrapped_mean = (law.mean_time_in_system_s * exits - plant.cycle_time_s * plant.good) / (
            plant.scrap
        )
        gap = plant.scrap / exits * abs(scrapped_mean - plant.cycle_time_s)
    else:
        gap = 0.0
    assert twin.cycle_time_s == pytest.approx(plant.cycle_time_s, abs=allowed_w + gap + 1e-9)


def test_lead_time_waits_for_the_first_part_to_leave() -> None:
    """Before a part leaves, lambda is 0 and W is undefined: null, never 0 or infinity;
    L is known from the first released part on."""
    fed = feed_twin(0.05, seed=1)  # three simulated minutes: nothing through five stations
    kpis = fed.twin.view().kpis
    assert kpis.good + kpis.scrap == 0
    assert kpis.work_in_process > 0
    assert kpis.mean_wip is not None
    assert kpis.mean_wip > 0
    assert kpis.cycle_time_s is None
