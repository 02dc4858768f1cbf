"""Where the optimizer leaves a line, against the cached expected-value truth.

``bench/optimizer_quality.py`` runs every lattice point of the default line, SMT
and bottling many times on seeds of its own and keeps each point's mean (the
expected objective) in ``bench/cache/optimizer_truth/``. Here the whole
recommendation runs as a user gets it, on a fixed search seed: the search with
its full budget, its best candidates and today's setpoints run again on fresh
seeds, and a change only when the gain is significant. The setpoints it leaves
the line at are looked up in the truth: at least 98% of the true optimum, for
both objectives on the three lines, and never below today's setpoints.

The truth is read from the cache, never computed here; a cache made from another
line file or simulator is refused, since its figures would be another plant's.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from models.optimizer.confirmation import CONFIRMATION_SEED
from models.optimizer.evaluation import (
    EVALUATION_REPLICATIONS,
    EVALUATION_SEED,
    OBJECTIVES,
    Objective,
    PlantSimulator,
)
from models.optimizer.recommendation import recommend
from models.optimizer.space import decision_space
from twin.sim.streams import LAYOUT

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "bench"))
import optimizer_quality as bench  # noqa: E402 - the benchmark's settings and truth

SEARCH_SEED = 1


def _truth(name: str) -> dict[str, Any]:
    """The cached truth, refused when made from another line file or simulator."""
    config, _, hours = bench._line(name)
    path = bench.CACHE / f"{name}.json"
    cached = json.loads(path.read_text("utf-8"))
    made_from = cached["made_from"]
    assert made_from["line_digest"] == bench._digest(config), f"{name}: of another line file"
    assert made_from.get("random_streams") == LAYOUT, f"{name}: of another simulator"
    assert made_from["keys"] == list(decision_space(config).keys)
    assert made_from["hours"] == hours
    return dict(cached)


def _left_at(name: str, objective: Objective) -> dict[str, Any]:
    """The setpoints the whole recommendation leaves the line at, and its verdict."""
    config, _, hours = bench._line(name)
    space = decision_space(config)
    simulator = PlantSimulator(
        config,
        hours=hours,
        seed=EVALUATION_SEED + bench.SEED_STRIDE * SEARCH_SEED,
        replications=EVALUATION_REPLICATIONS,
    )
    found = recommend(
        config,
        objective,
        evaluate=simulator,
        space=space,
        hours=hours,
        budget=bench.BUDGET,
        seed=SEARCH_SEED,
        candidates=bench.CANDIDATES,
        replications=bench.CONFIRM_REPLICATIONS,
        max_replications=bench.CONFIRM_MAX_REPLICATIONS,
        confirm_seed=CONFIRMATION_SEED + bench.SEED_STRIDE * SEARCH_SEED,
    )
    return {"left": found.left, "today": found.today, "verdict": found.confirmation.verdict}


@pytest.fixture(scope="module")
def outcomes() -> dict[tuple[str, str], dict[str, Any]]:
    truths = {name: _truth(name) for name in bench.LINES}
    cases = [(name, objective) for name in bench.LINES for objective in OBJECTIVES]
    with ProcessPoolExecutor(max_workers=2) as pool:
        found = pool.map(
            _left_at, [name for name, _ in cases], [objective for _, objective in cases]
        )
        return {
            case: {**outcome, "values": truths[case[0]]["values"]}
            for case, outcome in zip(cases, found, strict=True)
        }


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize("name", list(bench.LINES))
def test_the_recommendation_reaches_98_percent_of_the_true_optimum(
    outcomes: dict[tuple[str, str], dict[str, Any]], name: str, objective: str
) -> None:
    outcome = outcomes[name, objective]
    values = outcome["values"]
    lattice = [bench.point_key(p) for p in decision_space(bench._line(name)[0]).points()]
    optimum = max(values[key][objective] for key in lattice)
    reached = values[bench.point_key(outcome["left"])][objective]
    today = values[bench.point_key(outcome["today"])][objective]
    assert reached >= bench.TARGET * optimum, (
        outcome["verdict"],
        outcome["left"],
        reached,
        optimum,
    )
    assert reached >= today, (outcome["verdict"], outcome["left"], reached, today)
