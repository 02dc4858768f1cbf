"""The simulator against queueing theory, where theory gives an answer.

Each check runs independent replications and asserts that the theoretical
value lies inside the confidence interval of the replication means. When a
test makes several such assertions, the intervals are widened by the
Bonferroni correction, so that the whole family holds at 95%: that is the only
allowance, and it comes from the statistics, not from a fudge factor.
Deterministic lines have no noise; there the tolerance is one part in the
observed window, the resolution of a count. Little's law is checked on every
run against its exact boundary terms.

The configurations are in examples/validation/ and docs/validation.md lists
theory beside result.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from twin.config.line import LineConfig, load_config, with_changes
from twin.experiments.experiment import ExperimentResult, estimate, run_experiment

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "validation"
FAMILY_CONFIDENCE = 0.95


def config(name: str, **changes: Any) -> LineConfig:
    return with_changes(load_config(EXAMPLES / f"{name}.yaml"), changes, name)


def experiment(
    line: LineConfig, hours: float, replications: int, warmup: float
) -> ExperimentResult:
    result = run_experiment(
        line,
        hours=hours,
        seed=20261128,
        replications=replications,
        warmup_hours=warmup,
        jobs=2,
    )
    for run in result.runs:
        assert run.littles_law.holds, run.littles_law
    return result


def assert_in_interval(values: list[float], theory: float, family_size: int, label: str) -> None:
    confidence = 1 - (1 - FAMILY_CONFIDENCE) / family_size
    found = estimate(values, confidence)
    assert found.low is not None
    assert found.high is not None
    assert found.low <= theory <= found.high, (
        f"{label}: theory {theory:.5g} outside the {confidence:.4f} interval "
        f"[{found.low:.5g}, {found.high:.5g}] (mean {found.mean:.5g})"
    )


@pytest.mark.parametrize("rho", [0.5, 0.7, 0.9])
def test_mm1_queue_length_and_sojourn(rho: float) -> None:
    mu = 1.0
    line = config("mm1", **{"release.interarrival.mean_s": 1 / (rho * mu)})
    result = experiment(line, hours=15, replications=12, warmup=0.5)
    wip = [run.line_kpis.mean_wip or 0.0 for run in result.runs]
    sojourn = [run.littles_law.mean_time_in_system_s or 0.0 for run in result.runs]
    utilisation = [run.stations[0].kpis.utilisation or 0.0 for run in result.runs]
    assert_in_interval(utilisation, rho, 3, f"rho={rho} utilisation")
    assert_in_interval(wip, rho / (1 - rho), 3, f"rho={rho} L")
    assert_in_interval(sojourn, 1 / (mu - rho * mu), 3, f"rho={rho} W")


def test_tandem_jackson_line_cycle_time_is_the_sum_of_mm1_terms() -> None:
    line = config("jackson_tandem")
    arrival_rate = 1.0
    theory = sum(1 / (1 / station.processing_time.mean - arrival_rate) for station in line.stations)
    result = experiment(line, hours=10, replications=10, warmup=0.5)
    cycle_times = [run.line_kpis.cycle_time_s or 0.0 for run in result.runs]
    assert_in_interval(cycle_times, theory, 1, "Jackson tandem CT")


def test_conwip_practical_worst_case_for_w_1_to_16() -> None:
    rb, t0 = 1.0, 4.0
    w0 = rb * t0
    wips = range(1, 17)
    family = 2 * len(wips)
    for w in wips:
        line = config("conwip_exponential", **{"release.wip_cap": w})
        result = experiment(line, hours=1.2, replications=6, warmup=0.05)
        throughput = [(run.line_kpis.throughput_per_h or 0.0) / 3600 for run in result.runs]
        cycle = [run.line_kpis.cycle_time_s or 0.0 for run in result.runs]
        assert_in_interval(throughput, w / (w0 + w - 1) * rb, family, f"w={w} TH")
        assert_in_interval(cycle, t0 + (w - 1) / rb, family, f"w={w} CT")


@pytest.mark.parametrize("w", [1, 2, 3, 4, 6, 8])
def test_conwip_best_case(w: int) -> None:
    rb, t0 = 1.0, 4.0
    hours, warmup = 1.0, 0.01
    result = experiment(config("conwip_deterministic", **{"release.wip_cap": w}), hours, 1, warmup)
    run = result.runs[0]
    window = hours * 3600
    throughput = (run.line_kpis.throughput_per_h or 0.0) / 3600
    assert throughput == pytest.approx(min(w / t0, rb), abs=1 / window)
    assert run.line_kpis.cycle_time_s == pytest.approx(max(t0, w / rb), abs=1e-9)


def test_breakdowns_give_the_effective_process_time() -> None:
    line = config("breakdowns")
    station = line.stations[0]
    assert station.failures is not None
    availability = station.failures.mtbf_s / (station.failures.mtbf_s + station.failures.mttr_s)
    effective = station.processing_time.mean / availability
    result = experiment(line, hours=40, replications=12, warmup=0)
    throughput = [(run.line_kpis.throughput_per_h or 0.0) / 3600 for run in result.runs]
    down = [
        run.stations[0].kpis.down_time_s / run.stations[0].kpis.planned_busy_time_s
        for run in result.runs
    ]
    assert_in_interval(throughput, 1 / effective, 2, "1/te")
    assert_in_interval(down, 1 - availability, 2, "down fraction")


def test_littles_law_on_the_default_line_with_everything_switched_on() -> None:
    result = experiment(load_config(), hours=24, replications=2, warmup=1)
    for run in result.runs:
        law = run.littles_law
        assert law.holds, law
        assert law.mean_wip > 0
        assert law.boundary_bound < law.mean_wip
    assert math.isfinite(result.summary["oee"].mean)
