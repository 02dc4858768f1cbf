"""Print docs/validation.md's table: queueing theory beside the simulator.

Run from the repository root: ``.venv/bin/python examples/validation/theory_vs_simulation.py``.
Each row is the mean of independent replications with its 95% confidence
interval; the tests in tests/twin/sim/test_validation.py assert the same figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twin.config.line import LineConfig, load_config, with_changes
from twin.experiments.experiment import estimate, run_experiment

HERE = Path(__file__).resolve().parent
SEED = 20261128


def config(name: str, **changes: Any) -> LineConfig:
    return with_changes(load_config(HERE / f"{name}.yaml"), changes, name)


def row(label: str, theory: float, values: list[float]) -> str:
    found = estimate(values)
    half = found.half_width or 0.0
    inside = "yes" if found.mean - half <= theory <= found.mean + half else "no"
    return f"| {label} | {theory:.4f} | {found.mean:.4f} ± {half:.4f} | {inside} |"


def main() -> None:
    print("| quantity | theory | simulation (95% CI) | theory inside |")
    print("|---|---|---|---|")
    for rho in (0.5, 0.7, 0.9):
        result = run_experiment(
            config("mm1", **{"release.interarrival.mean_s": 1 / rho}),
            hours=15,
            seed=SEED,
            replications=12,
            warmup_hours=0.5,
            jobs=2,
        )
        runs = result.runs
        print(
            row(
                f"M/M/1 rho={rho}: utilisation",
                rho,
                [r.stations[0].kpis.utilisation or 0 for r in runs],
            )
        )
        print(
            row(f"M/M/1 rho={rho}: L", rho / (1 - rho), [r.line_kpis.mean_wip or 0 for r in runs])
        )
        print(
            row(
                f"M/M/1 rho={rho}: W (s)",
                1 / (1 - rho),
                [r.littles_law.mean_time_in_system_s or 0 for r in runs],
            )
        )
    line = config("jackson_tandem")
    theory = sum(1 / (1 / s.processing_time.mean - 1.0) for s in line.stations)
    result = run_experiment(line, hours=10, seed=SEED, replications=10, warmup_hours=0.5, jobs=2)
    print(
        row(
            "Jackson tandem, 5 stations: CT (s)",
            theory,
            [r.line_kpis.cycle_time_s or 0 for r in result.runs],
        )
    )
    for w in (1, 2, 4, 8, 12, 16):
        result = run_experiment(
            config("conwip_exponential", **{"release.wip_cap": w}),
            hours=1.2,
            seed=SEED,
            replications=6,
            warmup_hours=0.05,
            jobs=2,
        )
        print(
            row(
                f"CONWIP worst case w={w}: TH (1/s)",
                w / (4 + w - 1),
                [(r.line_kpis.throughput_per_h or 0) / 3600 for r in result.runs],
            )
        )
        print(
            row(
                f"CONWIP worst case w={w}: CT (s)",
                4 + (w - 1),
                [r.line_kpis.cycle_time_s or 0 for r in result.runs],
            )
        )
    for w in (1, 4, 8):
        result = run_experiment(
            config("conwip_deterministic", **{"release.wip_cap": w}),
            hours=1,
            seed=SEED,
            replications=1,
            warmup_hours=0.01,
        )
        run = result.runs[0]
        print(
            f"| CONWIP best case w={w}: TH (1/s) | {min(w / 4, 1):.4f} | {(run.line_kpis.throughput_per_h or 0) / 3600:.4f} (deterministic) | within 1 part |"
        )
    result = run_experiment(config("breakdowns"), hours=40, seed=SEED, replications=12, jobs=2)
    print(
        row(
            "Breakdowns: 1/te = A/t0 (1/s)",
            (1000 / 1100) / 10,
            [(r.line_kpis.throughput_per_h or 0) / 3600 for r in result.runs],
        )
    )
    laws = [r.littles_law for r in result.runs]
    print(
        f"\nLittle's law held within its exact boundary terms on {sum(law.holds for law in laws)} of {len(laws)} runs of the last experiment."
    )


if __name__ == "__main__":
    main()
