"""The whole recommendation, as a user gets it: search, then confirm on fresh seeds.

``recommend`` runs a search (the Bayesian optimiser, or random search as the
baseline) with its budget, takes its few best candidates by the surrogate
(``ranked_candidates``) and has them and today's setpoints run again on fresh
seeds (``confirm``). The line is left at the confirmed candidate when its gain is
significant, and at today's setpoints otherwise. The benchmark against the truth
and its test judge exactly this.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from models.optimizer.confirmation import (
    CONFIRMATION_SEED,
    Confirmation,
    confirm,
    current_setpoints,
)
from models.optimizer.evaluation import Evaluate, Objective
from models.optimizer.search import OptimizationResult, optimize, ranked_candidates
from models.optimizer.space import DecisionSpace
from twin.config.line import LineConfig
from twin.experiments.experiment import Mapper


@dataclass(frozen=True)
class Recommendation:
    """The search, its confirmation, and the setpoints the line is left at."""

    result: OptimizationResult
    confirmation: Confirmation
    today: dict[str, float]

    @property
    def left(self) -> dict[str, float]:
        """The confirmed candidate when the gain is significant; else today's."""
        if self.confirmation.verdict == "change":
            return dict(self.confirmation.setpoints)
        return dict(self.today)


def recommend(
    config: LineConfig,
    objective: Objective,
    *,
    evaluate: Evaluate,
    space: DecisionSpace,
    hours: float,
    budget: int,
    seed: int,
    search: Callable[..., OptimizationResult] = optimize,
    candidates: int = 3,
    replications: int = 16,
    max_replications: int | None = None,
    confirm_seed: int = CONFIRMATION_SEED,
    today: Mapping[str, float] | None = None,
    backend: Mapper | None = None,
    confirming: Callable[[int], None] | None = None,
    **options: Any,
) -> Recommendation:
    """Search with ``budget`` evaluations, then confirm the best ``candidates``
    against ``today`` (the line file's setpoints by default) on ``replications``
    fresh runs of ``hours`` each, more while the answer is unclear; the
    confirmation's runs go to ``backend`` (None: this process), and ``confirming``
    is told how many candidates are confirmed before they run."""
    current = dict(today) if today is not None else current_setpoints(config, list(space.keys))
    result = search(
        config, objective, budget=budget, seed=seed, evaluate=evaluate, space=space, **options
    )
    best, *others = ranked_candidates(result, space, candidates)
    if confirming is not None:
        confirming(1 + len(others))
    check = confirm(
        config,
        objective,
        best,
        current,
        hours=hours,
        replications=replications,
        max_replications=max_replications,
        seed=confirm_seed,
        backend=backend,
        alternatives=others,
    )
    return Recommendation(result=result, confirmation=check, today=current)


__all__ = ["Recommendation", "recommend"]
