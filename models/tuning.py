"""Tuning the defect model: a seeded hyperparameter search, validated on later parts.

``tune_defect_model`` searches the classifier parameters of ``make_defect_model``'s
pipeline (learning rate, tree size, leaf size, L2 shrinkage, iterations) with
scikit-learn's ``HalvingRandomSearchCV`` (successive halving: every candidate
on a small share of the training rows, the best third on three times as many,
and so on) or ``RandomizedSearchCV`` (every candidate on all of them).

**Scoring: ROC-AUC.** The model is read as a ranking (its balanced class
weights move the scores away from defect rates, docs/models.md), the oracle is
compared in ROC-AUC, and ROC-AUC does not move with the defect rate, which
changes over a run as the setpoints are explored; average precision does.

**Validation in time.** A model in service scores parts that leave after the
ones it learnt from, so each validation fold lies after its training rows
(``time_splits``: scikit-learn's ``TimeSeriesSplit`` over the rows in the
order they left the line). ``gap`` parts between the two are left out: a
scrapped part's unreached stations carry the values of a part up to 50 ahead
of it (``models.dataset.parts``), which may leave the line later, and neighbours
share a setpoint regime and the tool's wear; training on the parts just before
the fold would flatter the score. Rows that left at the very millisecond of the
fold's first part are dropped from its training side as well, so every
training row left strictly before every validation row. Successive halving
subsamples both sides of a fold, which keeps that order.

**Reproducible.** ``random_state`` seeds the candidates, the halving's
subsamples and the classifier itself: the same data and seed give the same
candidates, scores and best parameters.

**Progress.** Scikit-learn's searchers report progress only by printing (its
callback API is newer than the versions this project supports), so the scorer
is wrapped and counts the validation scores it computes: one per fit of a
candidate on a fold. Every ``cv_splits`` of them are one candidate evaluation,
and ``progress(done, total)`` is called with candidate evaluations: with
halving, a candidate that survives a round counts again in the next, and the
total is the halving schedule's sum. The final refit of the best candidate on
all rows is not counted. With ``n_jobs > 1`` the fits run on threads (the
gradient boosting releases the GIL), so the count stays in this process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from math import ceil, floor, log
from typing import Any, Literal

import numpy as np
from joblib import parallel_config
from scipy.stats import loguniform, randint
from sklearn.experimental import enable_halving_search_cv  # noqa: F401 - enables the import
from sklearn.metrics import get_scorer
from sklearn.model_selection import (
    HalvingRandomSearchCV,
    ParameterSampler,
    RandomizedSearchCV,
    TimeSeriesSplit,
)
from sklearn.pipeline import Pipeline

from models.dataset.rows import IntArray, PartDataset
from models.dataset.splits import SPLIT_GAP
from models.defect import make_defect_model

SearchKind = Literal["halving", "random"]
Progress = Callable[[int, int], None]
Split = tuple[IntArray, IntArray]

SCORING = "roc_auc"
PREFIX = "classifier__"
# Parts left out between a fold's training rows and its validation rows: the
# dataset's stand-in reach (50 parts), over an hour of the default line's output.
DEFAULT_GAP = SPLIT_GAP  # the final split's gap too (models.dataset.splits)
DEFAULT_CANDIDATES = 27
HALVING_FACTOR = 3
TOP_ROWS = 10

# The classifier's parameters to search (names as ``make_defect_model`` takes them).
DEFAULT_SPACE: dict[str, Any] = {
    "learning_rate": loguniform(0.01, 0.3),
    "max_leaf_nodes": randint(7, 64),
    "min_samples_leaf": randint(10, 201),
    "l2_regularization": loguniform(1e-3, 10.0),
    "max_iter": [100, 200, 400],
}


@dataclass(frozen=True)
class Fold:
    """One validation fold: how many rows on each side and where in time they meet."""

    train_rows: int
    validation_rows: int
    train_last_ms: int  # when the last training part left the line
    validation_first_ms: int  # when the first validation part left: always later


@dataclass(frozen=True)
class TuningResult:
    """The best parameters found, how they scored, and the model refit with them."""

    search: SearchKind
    scoring: str
    seed: int
    best_params: dict[str, Any]  # as ``make_defect_model(**best_params)`` takes them
    best_score: float  # mean validation score of the best candidate (its last round)
    candidates: int  # candidates drawn
    candidate_evaluations: int  # (candidate, round) pairs scored, each on every fold
    folds: tuple[Fold, ...]
    gap: int
    top: tuple[dict[str, Any], ...]  # the best rows of the search's cv_results_
    elapsed_s: float
    model: Pipeline = field(compare=False, repr=False)  # refit on all training rows
    searcher: Any = field(compare=False, repr=False)  # the fitted scikit-learn search

    def as_dict(self) -> dict[str, Any]:
        """Everything but the fitted objects, JSON-safe."""
        return {
            "search": self.search,
            "scoring": self.scoring,
            "seed": self.seed,
            "best_params": self.best_params,
            "best_score": self.best_score,
            "candidates": self.candidates,
            "candidate_evaluations": self.candidate_evaluations,
            "folds": [vars(fold).copy() for fold in self.folds],
            "gap": self.gap,
            "top": list(self.top),
            "elapsed_s": self.elapsed_s,
        }


def _time_order(parts: PartDataset) -> IntArray:
    """Rows by the time they left the line, ties by part id (the builders' order)."""
    return np.lexsort((parts.part_id, parts.left_at_ms)).astype(np.int64)


def time_splits(train: PartDataset, n_splits: int = 4, gap: int = DEFAULT_GAP) -> list[Split]:
    """(training rows, validation rows) per fold, as indices into ``train`` in any
    row order: folds follow one another in time and every training row left the line
    strictly before every validation row of its fold, ``gap`` parts earlier at least."""
    order = _time_order(train)
    times = train.left_at_ms
    splits: list[Split] = []
    splitter = TimeSeriesSplit(n_splits=n_splits, gap=gap)
    for train_positions, validation_positions in splitter.split(order):
        fit_rows, validation_rows = order[train_positions], order[validation_positions]
        first = times[validation_rows].min()
        fit_rows = fit_rows[times[fit_rows] < first]  # ties with the fold's first part
        if len(fit_rows) == 0:
            raise ValueError(f"fold without training rows: {len(train)} rows are too few")
        splits.append((np.sort(fit_rows), np.sort(validation_rows)))
    return splits


class _CountingScorer:
    """A scorer that counts its calls (one per fitted candidate and fold) and reports
    every completed group of ``per_evaluation`` of them."""

    def __init__(
        self, scoring: str, per_evaluation: int, total: int, progress: Progress | None
    ) -> None:
        self.scorer = get_scorer(scoring)
        self.per_evaluation = per_evaluation
        self.total = total
        self.progress = progress
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, estimator: Any, features: Any, labels: Any) -> float:
        score = float(self.scorer(estimator, features, labels))
        with self.lock:
            self.calls += 1
            if self.progress is not None and self.calls % self.per_evaluation == 0:
                self.progress(min(self.calls // self.per_evaluation, self.total), self.total)
        return score


def halving_schedule(candidates: int, samples: int, folds: int) -> tuple[int, list[int]]:
    """(min_resources, candidates per round) of successive halving on ``samples`` rows,
    as ``HalvingRandomSearchCV(min_resources="exhaust")`` plans it: start with as
    many rows as lets the last round use them all."""
    required = 1 + floor(log(candidates, HALVING_FACTOR))
    smallest = folds * 2 * 2  # scikit-learn's "smallest": 2 rows per fold and class
    min_resources = max(smallest, samples // HALVING_FACTOR ** (required - 1))
    if min_resources > samples:
        raise ValueError(f"{samples} training rows are too few for halving over {folds} folds")
    possible = 1 + floor(log(samples // min_resources, HALVING_FACTOR))
    rounds, counts = min(possible, required), [candidates]
    while len(counts) < rounds:
        counts.append(ceil(counts[-1] / HALVING_FACTOR))
    return min_resources, counts


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers (JSON-safe)."""
    return value.item() if isinstance(value, np.generic) else value


def _top_rows(results: Mapping[str, Any], count: int, samples: int) -> tuple[dict[str, Any], ...]:
    rows = []
    for index in np.argsort(results["rank_test_score"], kind="stable")[:count]:
        params = results["params"][index]
        row: dict[str, Any] = {
            "rank": int(results["rank_test_score"][index]),
            "params": {key.removeprefix(PREFIX): _plain(v) for key, v in params.items()},
            "mean_test_score": float(results["mean_test_score"][index]),
            "std_test_score": float(results["std_test_score"][index]),
            "mean_fit_time_s": float(results["mean_fit_time"][index]),
        }
        if "n_resources" in results:
            row["round"] = int(results["iter"][index])
            # Halving's resource is rows: this share of each fold's two sides was used.
            row["share_of_rows"] = float(results["n_resources"][index]) / samples
        rows.append(row)
    return tuple(rows)


def tune_defect_model(
    train: PartDataset,
    *,
    random_state: int,
    n_candidates: int = DEFAULT_CANDIDATES,
    cv_splits: int = 4,
    gap: int = DEFAULT_GAP,
    search: SearchKind = "halving",
    param_distributions: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    n_jobs: int = 1,
    top: int = TOP_ROWS,
) -> TuningResult:
    """Search the defect model's classifier parameters on ``train`` (see the module
    docstring); ``param_distributions`` (names as ``make_defect_model`` takes them,
    scipy distributions or lists) replaces ``DEFAULT_SPACE``."""
    if search not in ("halving", "random"):
        raise ValueError(f"unknown search {search!r}; use 'halving' or 'random'")
    if n_candidates < 1:
        raise ValueError(f"n_candidates must be >= 1 (got {n_candidates})")
    if len(np.unique(train.defect)) < 2:
        raise ValueError("the training parts need both good and defective parts")
    space = {
        f"{PREFIX}{name}": values for name, values in (param_distributions or DEFAULT_SPACE).items()
    }
    # In time order, so that the search (its halving subsamples, the fits' row order)
    # does not depend on the order the rows came in.
    train = train.take(_time_order(train))
    splits = time_splits(train, cv_splits, gap)
    estimator = make_defect_model(random_state=random_state)
    drawn = len(ParameterSampler(space, n_iter=n_candidates))
    searcher: HalvingRandomSearchCV | RandomizedSearchCV
    if search == "halving":
        min_resources, rounds = halving_schedule(drawn, len(train), len(splits))
        scorer = _CountingScorer(SCORING, len(splits), sum(rounds), progress)
        searcher = HalvingRandomSearchCV(
            estimator,
            space,
            n_candidates=drawn,
            factor=HALVING_FACTOR,
            min_resources=min_resources,
            cv=splits,
            scoring=scorer,
            random_state=random_state,
            n_jobs=n_jobs,
            error_score="raise",
            return_train_score=False,  # the scorer would count the training scores too
        )
    else:
        scorer = _CountingScorer(SCORING, len(splits), drawn, progress)
        searcher = RandomizedSearchCV(
            estimator,
            space,
            n_iter=drawn,
            cv=splits,
            scoring=scorer,
            random_state=random_state,
            n_jobs=n_jobs,
            error_score="raise",
        )
    if progress is not None:
        progress(0, scorer.total)
    started = time.perf_counter()
    # Threads, not processes: the counting scorer must run in this process.
    with parallel_config(backend="threading"):
        searcher.fit(train.features, train.defect)
    elapsed = time.perf_counter() - started
    times = train.left_at_ms
    return TuningResult(
        search=search,
        scoring=SCORING,
        seed=random_state,
        best_params={
            key.removeprefix(PREFIX): _plain(value) for key, value in searcher.best_params_.items()
        },
        best_score=float(searcher.best_score_),
        candidates=drawn,
        candidate_evaluations=scorer.calls // len(splits),
        folds=tuple(
            Fold(len(fit), len(check), int(times[fit].max()), int(times[check].min()))
            for fit, check in splits
        ),
        gap=gap,
        top=_top_rows(searcher.cv_results_, top, len(train)),
        elapsed_s=elapsed,
        model=searcher.best_estimator_,
        searcher=searcher,
    )


def describe_params(params: Mapping[str, Any]) -> Sequence[str]:
    """``name = value`` lines, floats to 4 significant digits (for reports and the CLI)."""
    return [
        f"{name} = {value:.4g}" if isinstance(value, float) else f"{name} = {value}"
        for name, value in sorted(params.items())
    ]


__all__ = [
    "DEFAULT_GAP",
    "DEFAULT_SPACE",
    "Fold",
    "TuningResult",
    "describe_params",
    "halving_schedule",
    "time_splits",
    "tune_defect_model",
]
