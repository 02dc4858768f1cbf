"""The estimators of ``twin.learning.estimators`` on samples whose truth is known:
the family chosen, the parameters in the line file's terms, and intervals that
cover the truth as often as they say."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from pydantic import TypeAdapter

from twin.config.distributions import Duration, sampler
from twin.learning.estimators import (
    exponential_mean,
    exponential_sample_mean,
    fit_duration,
    proportion,
)


def _draws(block: dict[str, object], count: int, seed: int) -> np.ndarray:
    """``count`` durations drawn by the simulator's own sampler for a line file block."""
    draw = sampler(TypeAdapter(Duration).validate_python(block), random.Random(seed))
    return np.array([draw() for _ in range(count)])


@pytest.mark.parametrize(
    ("block", "family"),
    [
        ({"distribution": "lognormal", "mean_s": 52, "cv": 0.18}, "lognormal"),
        ({"distribution": "exponential", "mean_s": 30}, "exponential"),
        ({"distribution": "triangular", "min_s": 36, "mode_s": 44, "max_s": 60}, "triangular"),
        ({"distribution": "gamma", "mean_s": 46, "cv": 0.5}, "gamma"),
        ({"distribution": "deterministic", "mean_s": 12}, "deterministic"),
    ],
)
def test_the_family_the_simulator_drew_from_is_chosen(
    block: dict[str, object], family: str
) -> None:
    fit = fit_duration(_draws(block, 4000, seed=3))
    assert fit.family == family, fit.aic
    for name, value in block.items():
        if name != "distribution":
            assert fit.parameters[name] == pytest.approx(value, rel=0.05), name
    assert fit.as_line_file()["distribution"] == family


def test_the_mean_interval_covers_the_truth_about_95_times_in_100() -> None:
    block = {"distribution": "lognormal", "mean_s": 40, "cv": 0.3}
    covered = sum(fit_duration(_draws(block, 200, seed)).mean.covers(40.0) for seed in range(200))
    # 95% of 200 is 190; a binomial's 3 standard deviations are about 9.
    assert 181 <= covered <= 199, covered


def test_poisson_and_exponential_intervals_cover_as_they_say() -> None:
    rng = np.random.default_rng(5)
    mtbf, hits_process, hits_sample = 7200.0, 0, 0
    for _ in range(300):
        gaps = rng.exponential(mtbf, 12)
        exposure = float(gaps.sum()) + rng.exponential(mtbf)  # censored after the last
        hits_process += exponential_mean(exposure, 12).covers(mtbf)
        hits_sample += exponential_sample_mean(gaps).covers(mtbf)
    for hits in (hits_process, hits_sample):
        assert 0.92 * 300 <= hits <= 0.98 * 300, hits
    none = exponential_mean(50_000.0, 0)
    assert math.isinf(none.value)
    assert none.low > 0


def test_a_share_keeps_its_interval_inside_zero_and_one() -> None:
    nothing = proportion(0, 500)
    assert nothing.value == 0.0
    assert nothing.low == 0.0
    assert 0 < nothing.high < 0.01
    everything = proportion(40, 40)
    assert everything.high == 1.0
    assert everything.low < 1.0
    with pytest.raises(ValueError, match="successes <= trials"):
        proportion(3, 2)


def test_bad_durations_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="no durations"):
        fit_duration([])
    with pytest.raises(ValueError, match="finite and >= 0"):
        fit_duration([1.0, float("inf")])


def test_a_clean_series_has_one_regime_and_a_step_is_found_where_it_is() -> None:
    """No change-point in 200 series of 3,000 clean lognormal times (cv 0.18), nor
    in gamma and exponential ones; a 12% step 150 values before the end is found
    within a few values of where it is."""
    from twin.learning.estimators import regime_start

    rng = np.random.default_rng(7)
    sigma = math.sqrt(math.log(1 + 0.18**2))
    found = [
        regime_start(rng.lognormal(math.log(52) - sigma**2 / 2, sigma, 3000)) for _ in range(200)
    ]
    found += [regime_start(rng.gamma(4, 10, 3000)) for _ in range(100)]
    found += [regime_start(rng.exponential(420, 400)) for _ in range(100)]
    assert found.count(0) == len(found)
    steps = []
    for _ in range(20):
        before = rng.lognormal(math.log(52) - sigma**2 / 2, sigma, 3000)
        after = rng.lognormal(math.log(52 * 1.12) - sigma**2 / 2, sigma, 150)
        steps.append(regime_start(np.concatenate([before, after])))
    assert sum(abs(step - 3000) <= 20 for step in steps) >= 18, steps


def test_a_durations_interval_never_reaches_below_zero() -> None:
    """Eight skewed jam durations: Student's t would reach below zero; a duration
    cannot, so the lower end stops at 0 while the mean and the upper end stay."""
    from twin.learning.estimators import duration_mean, fit_duration, mean_estimate

    jams = [1.0, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 230.0]
    plain = mean_estimate(jams)
    assert plain.low < 0  # what the t interval alone says
    clipped = duration_mean(jams)
    assert clipped.low == 0.0
    assert (clipped.value, clipped.high, clipped.n) == (plain.value, plain.high, plain.n)
    assert fit_duration(jams).mean.low == 0.0


def test_draws_of_a_duration_whose_interval_starts_at_zero_stay_positive() -> None:
    """Eight skewed jams: the learnt jam duration's interval starts at 0, yet every
    draw of it is a valid, positive duration (a drawn line file validates)."""
    from twin.learning.line import LearnedLine, LearnedParameter

    line = load_line_with_jams()
    item = LearnedParameter(
        station="machining",
        parameter="microstops.duration.mean_s",
        value=31.6,
        low=0.0,
        high=66.0,
        n=8,
        unit="s",
        nominal=40.0,
        ratio=0.79,
        drifted=False,
    )
    learnt = LearnedLine(line=line, parameters=[item], not_learnt=[])
    rng = random.Random(3)
    for _ in range(500):
        drawn = learnt.drawn(rng)
        block = {b["id"]: b for b in drawn["stations"]}["machining"]
        assert block["microstops"]["duration"]["mean_s"] > 0


def load_line_with_jams() -> dict[str, object]:
    from twin.config.line import load_config

    data = load_config().model_dump(mode="json")
    block = {b["id"]: b for b in data["stations"]}["machining"]
    block["microstops"]["duration"]["mean_s"] = 31.6
    return data


def test_a_family_whose_mean_misses_the_samples_is_not_chosen() -> None:
    """Changeovers that last 900 s, but for a few cut short (a stay whose end the
    stream lost, say): a triangle with its mode and maximum at 900 fits them best
    by likelihood, yet its mean is a third below theirs. The line runs on the
    mean, so the family chosen keeps a mean inside the mean's interval."""
    rng = random.Random(7)
    samples = [900.0] * 40 + [rng.uniform(100.0, 900.0) for _ in range(4)]
    fit = fit_duration(samples)
    line_file = fit.as_line_file()
    if fit.family == "triangular":
        mean = (line_file["min_s"] + line_file["mode_s"] + line_file["max_s"]) / 3
    else:
        mean = line_file["mean_s"]
    assert fit.mean.low <= mean <= fit.mean.high, (fit.family, line_file)
    assert mean == pytest.approx(sum(samples) / len(samples), rel=0.02)
