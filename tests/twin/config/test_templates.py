"""The line templates in examples/lines run and land in a plausible KPI band.

Each template is simulated for one full period of its calendar, so every
planned stop is in the window, with three replications. The band is wide on
purpose: it catches a template that a schema or model change has broken
(nothing flows, OEE near 0 or 1, cost out of all proportion), not a drift of a
few points.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from twin.config.line import LineConfig, load_config
from twin.experiments.experiment import run_experiment

TEMPLATE_DIR = Path(__file__).resolve().parents[3] / "examples" / "lines"
TEMPLATES = sorted(TEMPLATE_DIR.glob("*.yaml"))
OEE_BAND = (0.40, 0.95)
QUALITY_BAND = (0.80, 1.0)
WARMUP_HOURS = 0.5
SEED = 20240611


def span_hours(config: LineConfig) -> float:
    """One full calendar period, or a day for a line that never stops."""
    return config.calendar.period_h if config.calendar is not None else 24.0


def test_there_are_at_least_three_templates() -> None:
    assert len(TEMPLATES) >= 3, f"expected at least 3 templates in {TEMPLATE_DIR}"


@pytest.mark.slow
@pytest.mark.parametrize("path", TEMPLATES, ids=lambda path: path.stem)
def test_template_kpis_are_plausible(path: Path) -> None:
    config = load_config(path)
    result = run_experiment(
        config,
        hours=span_hours(config),
        seed=SEED,
        replications=3,
        warmup_hours=WARMUP_HOURS,
        jobs=2,
    )
    summary = result.summary

    oee = summary["oee"].mean
    assert OEE_BAND[0] <= oee <= OEE_BAND[1], f"OEE {oee:.1%} outside {OEE_BAND}"
    assert summary["throughput_per_h"].mean > 0
    quality = summary["quality_ratio"].mean
    assert QUALITY_BAND[0] <= quality <= QUALITY_BAND[1], f"quality ratio {quality:.1%}"
    cost = summary["cost_per_good_part"].mean
    ceiling = 2 * max(product.price for product in config.products)
    assert 0 < cost < ceiling, f"cost per good part {cost:.2f}, ceiling {ceiling:.2f}"

    for run in result.runs:
        assert run.littles_law.holds, f"seed {run.seed}: {run.littles_law}"
        idle = [station.id for station in run.stations if station.good == 0]
        assert idle == [], f"seed {run.seed}: stations produced no good parts: {idle}"
        if config.calendar is not None and config.calendar.planned_downtime:
            # The window covers a whole period, so every planned stop fell in it.
            assert all(station.kpis.planned_downtime_s > 0 for station in run.stations)
