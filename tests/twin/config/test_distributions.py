"""Each sampler draws with the mean and variance its parameters promise."""

from __future__ import annotations

import math
import random
import statistics
from typing import Any

import pytest
from pydantic import TypeAdapter

from twin.config.distributions import Duration, sampler

DURATIONS: list[dict[str, Any]] = [
    {"distribution": "deterministic", "mean_s": 12.5},
    {"distribution": "exponential", "mean_s": 4.0},
    {"distribution": "lognormal", "mean_s": 30.0, "cv": 0.4},
    {"distribution": "gamma", "mean_s": 30.0, "cv": 0.6},
    {"distribution": "erlang", "mean_s": 20.0, "k": 3},
    {"distribution": "triangular", "min_s": 5.0, "mode_s": 8.0, "max_s": 20.0},
    {"distribution": "empirical", "values_s": [3.0, 4.0, 10.0], "weights": [3, 1, 1]},
    {"distribution": "empirical", "values_s": [1.0, 2.0, 3.0, 4.0]},
]
ADAPTER: TypeAdapter[Duration] = TypeAdapter(Duration)


@pytest.mark.parametrize("scale", [1.0, 0.4], ids=["unscaled", "scale 0.4"])
@pytest.mark.parametrize("spec", DURATIONS, ids=lambda spec: spec["distribution"])
def test_sample_mean_and_variance(spec: dict[str, Any], scale: float) -> None:
    """Scaled by ``scale`` (a speed's 1 / factor), a duration's mean scales by it
    and its variance by its square, in every family."""
    duration = ADAPTER.validate_python(spec)
    draw = sampler(duration, random.Random(7), scale=scale)
    n = 40_000
    values = [draw() for _ in range(n)]
    assert min(values) >= 0
    mean, variance = duration.mean * scale, duration.variance * scale**2
    # 4.5 standard errors: a wrong formula fails, sampling noise does not. The
    # variance gets 8%: about five standard errors of a sample variance for the
    # heaviest tail here (exponential, kurtosis 9: sqrt(8 / n) = 1.4%).
    assert statistics.fmean(values) == pytest.approx(
        mean, abs=4.5 * math.sqrt(variance / n) + 1e-12
    )
    if variance == 0:
        assert statistics.pvariance(values) == 0
    else:
        assert statistics.variance(values) == pytest.approx(variance, rel=0.08)


def test_scale_divides_by_speed() -> None:
    duration = ADAPTER.validate_python({"distribution": "deterministic", "mean_s": 10})
    assert sampler(duration, random.Random(1), scale=0.5)() == 5.0
    # Without a scale, a duration is drawn as the line file gives it.
    assert sampler(duration, random.Random(1))() == 10.0


def test_same_seed_same_draws() -> None:
    duration = ADAPTER.validate_python({"distribution": "gamma", "mean_s": 5, "cv": 1.2})
    first = sampler(duration, random.Random(3))
    second = sampler(duration, random.Random(3))
    assert [first() for _ in range(100)] == [second() for _ in range(100)]


@pytest.mark.parametrize("scale", [1.0, 2.5])
def test_draws_stay_inside_the_scaled_support(scale: float) -> None:
    """A triangular draw lies between the scaled minimum and maximum, and an
    empirical draw is one of the scaled observed values."""
    triangular = ADAPTER.validate_python(
        {"distribution": "triangular", "min_s": 5.0, "mode_s": 6.0, "max_s": 9.0}
    )
    draw = sampler(triangular, random.Random(2), scale=scale)
    values = [draw() for _ in range(5000)]
    assert 5.0 * scale <= min(values) < 5.5 * scale
    assert 8.5 * scale < max(values) <= 9.0 * scale
    for weights in (None, [1.0, 5.0, 1.0]):
        empirical = ADAPTER.validate_python(
            {"distribution": "empirical", "values_s": [3.0, 4.0, 10.0], "weights": weights}
        )
        draw = sampler(empirical, random.Random(2), scale=scale)
        assert {draw() for _ in range(2000)} == {3.0 * scale, 4.0 * scale, 10.0 * scale}


def test_an_unknown_distribution_is_named_in_the_error() -> None:
    with pytest.raises(TypeError, match="weibull"):
        sampler("weibull", random.Random(1))  # type: ignore[arg-type]
