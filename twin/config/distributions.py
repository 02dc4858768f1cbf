"""Random durations: the distributions a line config can name, and their samplers.

Engineers quote cycle times by their mean and variability, so every family is
parametrised that way where it can be: ``mean_s`` and, for the skewed ones, the
coefficient of variation ``cv`` (standard deviation / mean).

| distribution | parameters | variance |
|---|---|---|
| deterministic | mean_s | 0 |
| exponential | mean_s | mean_s^2 (cv = 1) |
| lognormal | mean_s, cv | (cv * mean_s)^2 |
| gamma | mean_s, cv | (cv * mean_s)^2, shape 1/cv^2 |
| erlang | mean_s, k (phases) | mean_s^2 / k |
| triangular | min_s, mode_s, max_s | (a^2+b^2+c^2-ab-ac-bc)/18 |
| empirical | values_s (observed durations) | resampled with replacement |

Each sampler draws from the one seeded generator of its run, so the same seed
gives the same sequence of durations.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Sampler = Callable[[], float]
PositiveSeconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeSeconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
CoefficientOfVariation = Annotated[float, Field(gt=0, le=10, allow_inf_nan=False)]

DISTRIBUTION_NAMES = (
    "deterministic",
    "exponential",
    "lognormal",
    "gamma",
    "erlang",
    "triangular",
    "empirical",
)


class _Distribution(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @property
    def mean(self) -> float:
        raise NotImplementedError

    @property
    def variance(self) -> float:
        raise NotImplementedError


class Deterministic(_Distribution):
    """Always the same duration."""

    distribution: Literal["deterministic"]
    mean_s: NonNegativeSeconds

    @property
    def mean(self) -> float:
        return self.mean_s

    @property
    def variance(self) -> float:
        return 0.0


class Exponential(_Distribution):
    """Memoryless durations: coefficient of variation 1."""

    distribution: Literal["exponential"]
    mean_s: PositiveSeconds

    @property
    def mean(self) -> float:
        return self.mean_s

    @property
    def variance(self) -> float:
        return self.mean_s**2


class _MeanAndCv(_Distribution):
    mean_s: PositiveSeconds
    cv: CoefficientOfVariation

    @property
    def mean(self) -> float:
        return self.mean_s

    @property
    def variance(self) -> float:
        return (self.cv * self.mean_s) ** 2


class Lognormal(_MeanAndCv):
    """Right-skewed durations, given by their mean and coefficient of variation."""

    distribution: Literal["lognormal"]


class Gamma(_MeanAndCv):
    """Gamma durations by mean and coefficient of variation (shape 1/cv^2)."""

    distribution: Literal["gamma"]


class Erlang(_Distribution):
    """The sum of ``k`` exponential phases with total mean ``mean_s``."""

    distribution: Literal["erlang"]
    mean_s: PositiveSeconds
    k: Annotated[int, Field(ge=1, le=1000)]

    @property
    def mean(self) -> float:
        return self.mean_s

    @property
    def variance(self) -> float:
        return self.mean_s**2 / self.k


class Triangular(_Distribution):
    """Durations between a minimum and a maximum, most often near the mode."""

    distribution: Literal["triangular"]
    min_s: NonNegativeSeconds
    mode_s: NonNegativeSeconds
    max_s: PositiveSeconds

    @model_validator(mode="after")
    def _ordered(self) -> Triangular:
        if not self.min_s <= self.mode_s <= self.max_s:
            raise ValueError("needs min_s <= mode_s <= max_s")
        if self.min_s == self.max_s:
            raise ValueError("needs min_s < max_s (use deterministic for a fixed time)")
        return self

    @property
    def mean(self) -> float:
        return (self.min_s + self.mode_s + self.max_s) / 3

    @property
    def variance(self) -> float:
        a, c, b = self.min_s, self.mode_s, self.max_s
        return (a * a + b * b + c * c - a * b - a * c - b * c) / 18


class Empirical(_Distribution):
    """Observed durations, resampled with replacement (optionally weighted)."""

    distribution: Literal["empirical"]
    values_s: Annotated[list[NonNegativeSeconds], Field(min_length=1, max_length=1_000_000)]
    weights: list[Annotated[float, Field(gt=0, allow_inf_nan=False)]] | None = None

    @model_validator(mode="after")
    def _weights_match(self) -> Empirical:
        if self.weights is not None and len(self.weights) != len(self.values_s):
            raise ValueError(
                f"weights has {len(self.weights)} entries but values_s has {len(self.values_s)}"
            )
        if max(self.values_s) <= 0:
            raise ValueError("values_s needs at least one duration > 0")
        return self

    def _probabilities(self) -> list[float]:
        weights = self.weights or [1.0] * len(self.values_s)
        total = sum(weights)
        return [weight / total for weight in weights]

    @property
    def mean(self) -> float:
        return sum(p * v for p, v in zip(self._probabilities(), self.values_s, strict=True))

    @property
    def variance(self) -> float:
        mean = self.mean
        return sum(
            p * (v - mean) ** 2 for p, v in zip(self._probabilities(), self.values_s, strict=True)
        )


Duration = Annotated[
    Deterministic | Exponential | Lognormal | Gamma | Erlang | Triangular | Empirical,
    Field(discriminator="distribution"),
]


def sampler(duration: Duration, rng: random.Random, scale: float = 1.0) -> Sampler:
    """A zero-argument function that draws one duration in seconds, times ``scale``."""
    if isinstance(duration, Deterministic):
        value = duration.mean_s * scale
        return lambda: value
    if isinstance(duration, Exponential):
        rate = 1.0 / (duration.mean_s * scale)
        return lambda: rng.expovariate(rate)
    if isinstance(duration, Lognormal):
        sigma = math.sqrt(math.log1p(duration.cv**2))
        mu = math.log(duration.mean_s * scale) - sigma**2 / 2
        return lambda: rng.lognormvariate(mu, sigma)
    if isinstance(duration, Gamma):
        shape = 1.0 / duration.cv**2
        theta = duration.mean_s * scale / shape
        return lambda: rng.gammavariate(shape, theta)
    if isinstance(duration, Erlang):
        theta = duration.mean_s * scale / duration.k
        k = duration.k
        return lambda: rng.gammavariate(k, theta)
    if isinstance(duration, Triangular):
        low, mode, high = duration.min_s * scale, duration.mode_s * scale, duration.max_s * scale
        return lambda: rng.triangular(low, high, mode)
    if isinstance(duration, Empirical):
        values = [value * scale for value in duration.values_s]
        if duration.weights is None:
            return lambda: values[int(rng.random() * len(values))]
        cumulative: list[float] = []
        total = 0.0
        for weight in duration.weights:
            total += weight
            cumulative.append(total)
        last = len(values) - 1
        return lambda: values[min(bisect.bisect_right(cumulative, rng.random() * total), last)]
    raise TypeError(f"unsupported distribution {duration!r}")
