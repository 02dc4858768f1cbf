"""What the optimizer ends with is never worse than today's setpoints, judged
against the truth: on the default line and two templates, for both objectives,
the setpoints it would leave the line at (the recommendation when the fresh runs
confirm a gain, today's otherwise) are run many more times on seeds neither the
search nor the confirmation saw, and their expected value is compared with
today's on the same seeds.

Budgets are small (a test, not a benchmark), so the search often finds nothing
worth a change; what the test guards is the guarantee that holds whatever the
budget: a change is made only when it is a real gain.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest

from models.optimizer.confirmation import OBJECTIVE_FIELD, confirm, current_setpoints
from models.optimizer.evaluation import Objective, PlantSimulator
from models.optimizer.search import optimize, ranked_candidates
from models.optimizer.space import configure, decision_space
from twin.config.line import load_config
from twin.experiments.experiment import experiment_field, run_experiment

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "lines"
# Hours of one run: a shift of the default line and SMT; bottling fills a
# thousand bottles an hour and costs 25 times as much to simulate per hour.
HOURS = {None: 8.0, "smt.yaml": 8.0, "bottling.yaml": 1.0}
TRUTH_RUNS = 40
TRUTH_SEED = 515_151  # far from the search's and the confirmation's seeds


def values(
    config_path: Path | None, setpoints: dict[str, float], objective: str, hours: float
) -> list[float]:
    config = load_config(config_path)
    runs = run_experiment(
        configure(config, setpoints), hours=hours, seed=TRUTH_SEED, replications=TRUTH_RUNS
    ).runs
    return [experiment_field(run, OBJECTIVE_FIELD[objective]) or 0.0 for run in runs]


@pytest.mark.parametrize("objective", ["good_per_hour", "margin_per_hour"])
@pytest.mark.parametrize("template", [None, "smt.yaml", "bottling.yaml"])
def test_the_setpoints_left_on_the_line_are_never_worse_than_todays(
    template: str | None, objective: Objective
) -> None:
    path = EXAMPLES / template if template else None
    hours = HOURS[template]
    config = load_config(path)
    space = decision_space(config)
    simulator = PlantSimulator(config, hours=hours, replications=2)
    result = optimize(config, objective, budget=10, seed=3, evaluate=simulator, space=space)
    today = current_setpoints(config, list(space.keys))
    best, *others = ranked_candidates(result, space, 3)
    check = confirm(
        config, objective, best, today, hours=hours, replications=16, alternatives=others
    )
    left = check.setpoints if check.verdict == "change" else today
    # The truth, on seeds nobody chose by: paired by seed, as the line would compare.
    differences = [
        a - b
        for a, b in zip(
            values(path, left, objective, hours), values(path, today, objective, hours), strict=True
        )
    ]
    mean = statistics.fmean(differences)
    error = statistics.stdev(differences) / math.sqrt(len(differences)) if any(differences) else 0.0
    # Never worse: not below today's beyond three standard errors of the truth's estimate.
    assert mean >= -3 * error, (check.verdict, left, today, mean, error)
    if check.verdict == "change":
        assert check.difference.low is not None
        assert check.difference.low > 0
    else:
        assert left == today
