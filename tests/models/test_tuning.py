"""Tuning: folds in time order, reproducible by seed, progress counted as the search runs.

The data are synthetic parts (a speed and a temperature with a quality window,
a noise column, a constant column) with repeated leave times, so the fold
boundaries meet ties; their values lie on lattices, which keeps the gradient
boosting's binning cheap and the tests fast.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from scipy.stats import loguniform, randint
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from models.dataset.rows import PartDataset
from models.defect import make_defect_model
from models.tuning import TuningResult, halving_schedule, time_splits, tune_defect_model

SPACE: dict[str, Any] = {
    "learning_rate": loguniform(0.03, 0.3),
    "max_leaf_nodes": randint(4, 16),
    "min_samples_leaf": randint(5, 40),
    "max_iter": [10, 20, 30],
}


def synthetic_parts(rows: int, seed: int) -> PartDataset:
    rng = np.random.default_rng(seed)
    speed = rng.choice(np.round(np.linspace(0.7, 1.4, 15), 2), rows)
    temperature = rng.choice(np.arange(60.0, 111.0, 5.0), rows)
    noise = np.round(rng.random(rows), 2)
    logit = -1.5 + 25 * (speed - 1.05) ** 2 + 0.004 * (temperature - 85) ** 2
    probability = 1 / (1 + np.exp(-logit))
    # 0 to 2 s between parts: many leave in the same second as the one before.
    left_at_ms = 1_700_000_000_000 + np.cumsum(rng.integers(0, 3, rows)) * 1000
    return PartDataset(
        ("machining__speed", "welding__temperature_c", "painting__noise", "cutting__wear"),
        np.column_stack([speed, temperature, noise, np.zeros(rows)]),
        (rng.random(rows) < probability).astype(np.int64),
        np.full(rows, "", dtype=np.str_),
        np.arange(rows, dtype=np.int64),
        left_at_ms.astype(np.int64),
        probability,
    )


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def parts() -> PartDataset:
    return synthetic_parts(600, seed=11)


def _tune(train: PartDataset, seed: int, **options: Any) -> TuningResult:
    settings: dict[str, Any] = {
        "n_candidates": 5,
        "cv_splits": 3,
        "gap": 20,
        "param_distributions": SPACE,
    }
    return tune_defect_model(train, random_state=seed, **{**settings, **options})


def _check_folds(parts: PartDataset, splits: list[tuple[np.ndarray, np.ndarray]], gap: int) -> None:
    times = parts.left_at_ms
    ranks = np.argsort(np.lexsort((parts.part_id, times)))  # position in time, ties by id
    for train_rows, validation_rows in splits:
        assert len(train_rows) > 0
        assert len(validation_rows) > 0
        assert times[train_rows].max() < times[validation_rows].min()
        assert ranks[validation_rows].min() - ranks[train_rows].max() > gap
    validations = [validation for _, validation in splits]
    for earlier, later in zip(validations, validations[1:], strict=False):
        assert times[earlier].max() <= times[later].min()


def test_every_training_row_left_before_every_validation_row(parts: PartDataset) -> None:
    shuffled = parts.take(np.random.default_rng(0).permutation(len(parts)))
    splits = time_splits(shuffled, n_splits=4, gap=30)
    assert len(splits) == 4
    _check_folds(shuffled, splits, gap=30)
    # The synthetic leave times repeat; without the tie rule some fold would fail above.
    ties = [
        np.isin(shuffled.left_at_ms[train], shuffled.left_at_ms[validation]).any()
        for train, validation in time_splits(shuffled, n_splits=4, gap=0)
    ]
    assert not any(ties)


@pytest.mark.parametrize("search", ["halving", "random"])
def test_the_search_uses_time_ordered_folds(parts: PartDataset, search: str) -> None:
    train, _ = parts.time_split(0.3)
    result = _tune(train, seed=0, search=search)
    used = result.searcher.cv  # what the search actually split on
    expected = time_splits(train, 3, 20)
    assert len(used) == len(expected) == len(result.folds) == 3
    for (fit, check), (fit_expected, check_expected) in zip(used, expected, strict=True):
        np.testing.assert_array_equal(fit, fit_expected)
        np.testing.assert_array_equal(check, check_expected)
    _check_folds(train, list(used), gap=20)
    for fold in result.folds:
        assert fold.train_last_ms < fold.validation_first_ms


@pytest.mark.parametrize("search", ["halving", "random"])
def test_the_same_seed_gives_the_same_search(parts: PartDataset, search: str) -> None:
    train, _ = parts.time_split(0.3)
    first, again, other = (_tune(train, seed, search=search) for seed in (3, 3, 4))
    assert first.best_params == again.best_params
    assert first.best_score == again.best_score
    scores = first.searcher.cv_results_["mean_test_score"]
    np.testing.assert_array_equal(scores, again.searcher.cv_results_["mean_test_score"])
    timeless = [{k: v for k, v in row.items() if k != "mean_fit_time_s"} for row in first.top]
    assert timeless == [
        {k: v for k, v in row.items() if k != "mean_fit_time_s"} for row in again.top
    ]
    # The seed matters: another one draws other candidates.
    assert first.searcher.cv_results_["params"] != other.searcher.cv_results_["params"]
    if search == "random":
        return
    # Rows given in another order are put back in time order: the same search, the
    # same halving subsamples.
    shuffled = train.take(np.random.default_rng(1).permutation(len(train)))
    reordered = _tune(shuffled, 3, search=search)
    assert reordered.best_params == first.best_params
    assert reordered.best_score == pytest.approx(first.best_score, abs=1e-12)


def test_progress_counts_candidate_evaluations(parts: PartDataset) -> None:
    train, _ = parts.time_split(0.3)
    for search, candidates in (("halving", 9), ("random", 5)):
        calls: list[tuple[int, int]] = []
        # Random search on two threads: the counting scorer runs in this process still.
        result = _tune(
            train,
            seed=0,
            search=search,
            n_candidates=candidates,
            n_jobs=1 if search == "halving" else 2,
            progress=lambda done, total, calls=calls: calls.append((done, total)),
        )
        totals = {total for _, total in calls}
        assert len(totals) == 1
        total = totals.pop()
        done = [count for count, _ in calls]
        assert done == list(range(total + 1))  # from 0, one call per candidate evaluation
        if search == "halving":
            rounds = result.searcher.n_candidates_
            assert len(rounds) > 1  # several rounds, each smaller
            assert total == sum(rounds)
            assert halving_schedule(candidates, len(train), 3)[1] == rounds
        else:
            assert total == candidates
        assert result.candidate_evaluations == total


def test_the_result_is_usable_and_json_safe(parts: PartDataset) -> None:
    train, test = parts.time_split(0.3)
    result = _tune(train, seed=5, search="halving")
    data = json.loads(json.dumps(result.as_dict(), allow_nan=False))
    assert data["best_params"] == result.best_params
    assert data["search"] == "halving"
    assert data["seed"] == 5
    assert len(data["folds"]) == 3
    top_scores = [row["mean_test_score"] for row in data["top"]]
    assert top_scores == sorted(top_scores, reverse=True)
    assert top_scores[0] == pytest.approx(result.best_score)
    assert result.elapsed_s > 0
    # The best parameters as make_defect_model takes them give the refit model.
    rebuilt = make_defect_model(random_state=5, **result.best_params)
    rebuilt.fit(train.features, train.defect)
    np.testing.assert_array_equal(
        rebuilt.predict_proba(test.features), result.model.predict_proba(test.features)
    )
    # It learnt the quality window: it ranks later parts well, near their oracle.
    assert test.oracle_probability is not None
    oracle = roc_auc_score(test.defect, test.oracle_probability)
    model = roc_auc_score(test.defect, result.model.predict_proba(test.features)[:, 1])
    assert model > 0.9 * oracle


def test_bad_requests_are_refused(parts: PartDataset) -> None:
    with pytest.raises(ValueError, match="unknown search"):
        tune_defect_model(parts, random_state=0, search="grid")  # type: ignore[arg-type]
    good = parts.take(np.flatnonzero(parts.defect == 0))
    with pytest.raises(ValueError, match="both good and defective"):
        tune_defect_model(good, random_state=0)
    with pytest.raises(ValueError, match="Too many splits"):
        time_splits(parts.take(np.arange(30)), n_splits=4, gap=20)
