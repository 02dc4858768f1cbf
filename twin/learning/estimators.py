"""Estimators of a line's parameters from what its messages show.

Each returns an ``Estimate``: the value, its interval (95% unless ``confidence``
says otherwise) and the sample size it rests on.

- ``fit_duration``: a duration's distribution. Each family the line file can name
  with a formula (deterministic, exponential, lognormal, gamma, Erlang,
  triangular) is fitted by maximum likelihood and the one with the lowest AIC
  (2 parameters - 2 log-likelihood) is chosen; a Kolmogorov-Smirnov test says
  how well it fits (its p-value is approximate, the parameters being fitted on
  the same sample). The mean's interval is Student's t, which holds for any
  family once there are a few dozen samples.
- ``exponential_mean``: the mean of an exponential time (between failures, to
  repair) from a total exposure and an event count: the exact chi-square
  interval of a Poisson process.
- ``exponential_sample_mean``: the mean of exponential durations seen whole (a
  line file's repairs), with the exact chi-square interval.
- ``proportion``: a share (scrap, rework) with Wilson's interval, which stays
  inside [0, 1] and is sane at 0 events.
- ``logistic_model``: the log-odds of an event (a defect) as a linear function of
  any columns plus a known offset per observation and, optionally, a normal
  noise of known spread on the log-odds (a line file's quality model), by
  maximum likelihood (Fisher scoring; the noise integrated by Gauss-Hermite
  quadrature), with the covariance from the information matrix: Wald intervals
  for a coefficient or, by the delta method, for a function of them (a
  setpoint's best value and tolerance).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from twin.lazy import HEAVY_IMPORTS

if TYPE_CHECKING:
    from types import ModuleType

CONFIDENCE = 0.95


def _stats() -> ModuleType:
    """scipy.stats, loaded on first use: the API imports the learner, and SciPy
    (tens of MB) loads only once a line is learnt."""
    with HEAVY_IMPORTS:
        import scipy.stats

    module: ModuleType = scipy.stats
    return module


# Below this coefficient of variation a duration is taken as deterministic.
DETERMINISTIC_CV = 1e-6
Samples = Sequence[float] | np.ndarray[Any, Any]
# The families fitted, in the order a tie in AIC keeps.
FAMILIES = ("deterministic", "exponential", "erlang", "gamma", "lognormal", "triangular")


@dataclass(frozen=True)
class Estimate:
    """A value with its 95% interval and the number of observations behind it."""

    value: float
    low: float
    high: float
    n: int

    def covers(self, truth: float) -> bool:
        return self.low <= truth <= self.high

    def as_dict(self) -> dict[str, float | int]:
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n}


@dataclass(frozen=True)
class DurationFit:
    """A duration's chosen family, its parameters in the line file's terms
    (``mean_s``, ``cv``, ``k``, ``min_s`` ...), the mean's estimate, every family's
    AIC and the Kolmogorov-Smirnov p-value of the chosen one."""

    family: str
    parameters: dict[str, float]
    mean: Estimate
    aic: dict[str, float] = field(default_factory=dict)
    ks_pvalue: float | None = None

    def as_line_file(self) -> dict[str, Any]:
        """The ``distribution`` block of a line file."""
        return {"distribution": self.family, **self.parameters}


def _nonempty(samples: Samples) -> np.ndarray[Any, np.dtype[np.float64]]:
    data = np.asarray(samples, dtype=np.float64)
    if len(data) == 0:
        raise ValueError("no samples")
    return data


def mean_estimate(samples: Samples, confidence: float = CONFIDENCE) -> Estimate:
    """The mean with Student's t interval (one sample: no interval, the value twice)."""
    data = _nonempty(samples)
    n = len(data)
    mean = float(data.mean())
    if n < 2:
        return Estimate(mean, mean, mean, n)
    half = (
        float(_stats().t.ppf(0.5 + confidence / 2, n - 1)) * float(data.std(ddof=1)) / math.sqrt(n)
    )
    return Estimate(mean, mean - half, mean + half, n)


def duration_mean(samples: Samples, confidence: float = CONFIDENCE) -> Estimate:
    """The mean of durations with Student's t interval, its lower end at no less
    than 0: a few skewed durations (eight jams) can put the t interval's lower
    end below zero, and no duration is negative."""
    found = mean_estimate(samples, confidence)
    return Estimate(found.value, max(0.0, found.low), found.high, found.n)


def _fits(data: np.ndarray[Any, Any]) -> dict[str, tuple[float, dict[str, float], Any]]:
    """Each family's (log-likelihood, line-file parameters, frozen scipy distribution).
    A family given by its mean in a line file keeps the sample mean there (the
    estimate whose interval is reported); its shape comes from the likelihood."""
    mean = float(data.mean())
    fits: dict[str, tuple[float, dict[str, float], Any]] = {}
    exponential = _stats().expon(scale=mean)
    fits["exponential"] = (float(exponential.logpdf(data).sum()), {"mean_s": mean}, exponential)
    if data.min() <= 0:
        return fits  # the other families need positive durations
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        shape, _, scale = _stats().gamma.fit(data, floc=0)
        gamma = _stats().gamma(shape, scale=scale)
        fits["gamma"] = (
            float(gamma.logpdf(data).sum()),
            {"mean_s": mean, "cv": float(1 / math.sqrt(shape))},
            gamma,
        )
        k = max(1, round(shape))
        erlang = _stats().gamma(k, scale=mean / k)
        fits["erlang"] = (float(erlang.logpdf(data).sum()), {"mean_s": mean, "k": k}, erlang)
        logs = np.log(data)
        sigma, mu = float(logs.std()), float(logs.mean())
        lognormal = _stats().lognorm(sigma, scale=math.exp(mu))
        fits["lognormal"] = (
            float(lognormal.logpdf(data).sum()),
            {"mean_s": mean, "cv": math.sqrt(math.expm1(sigma * sigma))},
            lognormal,
        )
        c, low, width = _stats().triang.fit(data)
        # A duration is never negative: a fit that reaches below zero is not a candidate.
        if width > 0 and 0 <= c <= 1 and low >= 0:
            triangular = _stats().triang(c, loc=low, scale=width)
            likelihood = float(triangular.logpdf(data).sum())
            if math.isfinite(likelihood):
                fits["triangular"] = (
                    likelihood,
                    {
                        "min_s": float(low),
                        "mode_s": float(low + c * width),
                        "max_s": float(low + width),
                    },
                    triangular,
                )
    return fits


# Parameters each family fits (Erlang's k is one, though whole).
_PARAMETERS = {"exponential": 1, "erlang": 2, "gamma": 2, "lognormal": 2, "triangular": 3}


def _triangle_mean(parameters: dict[str, float]) -> float:
    return (parameters["min_s"] + parameters["mode_s"] + parameters["max_s"]) / 3


def fit_duration(samples: Samples, confidence: float = CONFIDENCE) -> DurationFit:
    """The family with the lowest AIC among ``FAMILIES`` for these durations (s).
    A family whose mean lies outside the mean's interval is no candidate, however
    well it fits: the triangular's mean is its own (the others keep the sample
    mean), and a triangle piled on the largest values (durations that are most
    often one value, a few shorter) can win on likelihood while its mean misses
    the station's by a third, and the line runs on the mean."""
    data = np.asarray(samples, dtype=np.float64)
    if len(data) == 0:
        raise ValueError("no durations to fit")
    if not np.all(np.isfinite(data)) or data.min() < 0:
        raise ValueError("durations must be finite and >= 0")
    mean = duration_mean(data, confidence)
    if len(data) < 2 or float(data.std()) <= DETERMINISTIC_CV * max(mean.value, 1e-300):
        return DurationFit("deterministic", {"mean_s": mean.value}, mean)
    fits = {
        name: fit
        for name, fit in _fits(data).items()
        if "mean_s" in fit[1] or mean.covers(_triangle_mean(fit[1]))
    }
    aic = {
        name: 2 * _PARAMETERS[name] - 2 * likelihood for name, (likelihood, _, _) in fits.items()
    }
    chosen = min(aic, key=lambda name: (aic[name], FAMILIES.index(name)))
    _, parameters, frozen = fits[chosen]
    ks = float(_stats().kstest(data, frozen.cdf).pvalue)
    return DurationFit(chosen, parameters, mean, aic, ks)


# A change-point: the means before and after a split differ by this many standard
# errors (high: the split is the best of hundreds, so chance must not reach it)
# and by at least MIN_SHIFT of the earlier mean (a file's round numbers and the
# stream's rounding differ by less).
CHANGE_Z = 5.0
MIN_SHIFT = 0.05
# The latest regime is judged on at least this many observations.
MIN_REGIME = 20


def regime_start(samples: Samples) -> int:
    """Where the latest regime of ``samples`` (oldest first) begins: the split
    that best separates an earlier mean from a later one (the largest two-sample
    z, from prefix sums, over splits that leave ``MIN_REGIME`` on each side), if
    its z is at least ``CHANGE_Z`` and the means differ by ``MIN_SHIFT`` or more;
    else 0 (one regime). A step change in a station's processing time of 12%
    with a cv of 0.18 is found after about 60 parts of the new regime."""
    data = np.asarray(samples, dtype=np.float64)
    n = len(data)
    if n < 2 * MIN_REGIME:
        return 0
    sums = np.cumsum(data)
    squares = np.cumsum(data * data)
    k = np.arange(MIN_REGIME, n - MIN_REGIME + 1)
    before = sums[k - 1] / k
    after = (sums[-1] - sums[k - 1]) / (n - k)
    total_var = max(float(squares[-1] / n - (sums[-1] / n) ** 2), 0.0)
    # Within-regime variance for each split (pooled), never below a tiny floor.
    within = (
        squares[k - 1] - k * before**2 + (squares[-1] - squares[k - 1]) - (n - k) * after**2
    ) / np.maximum(n - 2, 1)
    within = np.maximum(within, 1e-12 * max(total_var, 1e-300))
    z = np.abs(after - before) / np.sqrt(within * (1 / k + 1 / (n - k)))
    best = int(np.argmax(z))
    split = int(k[best])
    shift = abs(after[best] - before[best]) / max(abs(before[best]), 1e-300)
    if z[best] >= CHANGE_Z and shift >= MIN_SHIFT:
        # The later regime may itself have changed again: look inside it too.
        return split + regime_start(data[split:])
    return 0


# A change in a share (scrap) is looked for only with this many parts on each
# side: a handful of rare events must not make a regime.
MIN_SHARE_REGIME = 200
# The likelihood ratio statistic (2 log LR) a split of a share must reach.
SHARE_CHANGE_RATIO = 25.0


def _binomial_log_likelihood(events: Any, trials: Any) -> Any:
    """Sum of the binomial log-likelihood at its maximum, 0 log 0 taken as 0."""
    share = events / trials
    with np.errstate(divide="ignore", invalid="ignore"):
        hits = np.where(events > 0, events * np.log(np.where(share > 0, share, 1.0)), 0.0)
        misses = np.where(
            trials - events > 0,
            (trials - events) * np.log(np.where(share < 1, 1 - share, 1.0)),
            0.0,
        )
    return hits + misses


def share_regime_start(flags: Samples) -> int:
    """Where the latest regime of a share begins (``flags``: 1 for an event, oldest
    first): the split with the largest binomial likelihood ratio over splits that
    leave ``MIN_SHARE_REGIME`` on each side, if its statistic (2 log LR) is at
    least ``CHANGE_Z`` squared and the shares differ by ``MIN_SHIFT`` or more of
    the earlier one; else 0. The ratio, not a z of means, because a rare event's
    share is far from normal over a few hundred parts."""
    data = np.asarray(flags, dtype=np.float64)
    n = len(data)
    if n < 2 * MIN_SHARE_REGIME:
        return 0
    sums = np.cumsum(data)
    total = float(sums[-1])
    if total in (0.0, float(n)):
        return 0
    k = np.arange(MIN_SHARE_REGIME, n - MIN_SHARE_REGIME + 1)
    before, after = sums[k - 1], total - sums[k - 1]
    ratio = 2 * (
        _binomial_log_likelihood(before, k)
        + _binomial_log_likelihood(after, n - k)
        - _binomial_log_likelihood(np.array(total), np.array(float(n)))
    )
    best = int(np.argmax(ratio))
    split = int(k[best])
    earlier, later = before[best] / split, after[best] / (n - split)
    shift = abs(later - earlier) / max(earlier, later, 1e-300)
    if ratio[best] >= SHARE_CHANGE_RATIO and shift >= MIN_SHIFT:
        return split + share_regime_start(data[split:])
    return 0


# A change in the rate of a rare event (breakdowns, jams): the latest regime
# rests on this many events at least, and the split's likelihood ratio statistic
# (2 log LR) must reach RATE_CHANGE_RATIO. Over clean Poisson series of 12 to
# 1,000 events, the best split reaches 20 less than once in a thousand.
MIN_RATE_REGIME = 5
RATE_CHANGE_RATIO = 20.0


def rate_regime_start(gaps: Samples) -> int:
    """Where the latest regime of a Poisson process begins, as the number of events
    before it (``gaps``: the exposure up to each event from the one before, oldest
    first): the split with the largest likelihood ratio of two rates against one,
    over splits that leave ``MIN_RATE_REGIME`` events on each side, if its
    statistic reaches ``RATE_CHANGE_RATIO`` and the rates differ by ``MIN_SHIFT``
    or more; else 0. A rate that triples is followed after a median of 27 events
    of the new regime (90%: 64); one that doubles needs over a hundred, and a
    rate of a few events a day takes weeks: the interval says how sure it is."""
    data = np.asarray(gaps, dtype=np.float64)
    n = len(data)
    if n < 2 * MIN_RATE_REGIME or not np.all(data >= 0):
        return 0
    sums = np.cumsum(data)
    total = float(sums[-1])
    k = np.arange(MIN_RATE_REGIME, n - MIN_RATE_REGIME + 1)
    before, after = sums[k - 1], total - sums[k - 1]
    if total <= 0 or np.any(before <= 0) or np.any(after <= 0):
        return 0
    ratio = 2 * (
        k * np.log(k / before) + (n - k) * np.log((n - k) / after) - n * math.log(n / total)
    )
    best = int(np.argmax(ratio))
    split = int(k[best])
    earlier, later = split / before[best], (n - split) / after[best]
    shift = abs(later - earlier) / max(earlier, later)
    if ratio[best] >= RATE_CHANGE_RATIO and shift >= MIN_SHIFT:
        return split + rate_regime_start(data[split:])
    return 0


def exponential_mean(exposure: float, events: int, confidence: float = CONFIDENCE) -> Estimate:
    """The mean time between events of a Poisson process seen for ``exposure`` with
    ``events`` events: exposure / events, with the chi-square interval (no events:
    the value is infinite and only the lower end is finite)."""
    if exposure < 0 or events < 0:
        raise ValueError("exposure and events must be >= 0")
    alpha = 1 - confidence
    low = 2 * exposure / float(_stats().chi2.ppf(1 - alpha / 2, 2 * events + 2))
    if events == 0:
        return Estimate(math.inf, low, math.inf, 0)
    high = 2 * exposure / float(_stats().chi2.ppf(alpha / 2, 2 * events))
    return Estimate(exposure / events, low, high, events)


def exponential_sample_mean(samples: Samples, confidence: float = CONFIDENCE) -> Estimate:
    """The mean of exponential durations, with the chi-square interval of their sum."""
    data = _nonempty(samples)
    n = len(data)
    total = float(data.sum())
    alpha = 1 - confidence
    low = 2 * total / float(_stats().chi2.ppf(1 - alpha / 2, 2 * n))
    high = 2 * total / float(_stats().chi2.ppf(alpha / 2, 2 * n))
    return Estimate(total / n, low, high, n)


def proportion(successes: int, trials: int, confidence: float = CONFIDENCE) -> Estimate:
    """A share with Wilson's score interval."""
    if trials <= 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, trials > 0 (got {successes}/{trials})")
    p = successes / trials
    z = float(_stats().norm.ppf(0.5 + confidence / 2))
    z2 = z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / (1 + z2 / trials)
    # At 0 (or all) successes the bound is exactly 0 (1); rounding leaves a crumb.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return Estimate(p, low, high, trials)


@dataclass(frozen=True)
class LogisticModel:
    """The coefficients of the log-odds (``coefficients[0]`` the intercept, then one
    per column, in order) and their covariance, from ``n`` observations with
    ``events`` events."""

    coefficients: np.ndarray[Any, np.dtype[np.float64]]
    covariance: np.ndarray[Any, np.dtype[np.float64]]
    n: int
    events: int

    def interval(
        self, value: float, gradient: Sequence[float], confidence: float = CONFIDENCE
    ) -> Estimate:
        """A function of the coefficients, ``value`` at the fit, with its Wald
        interval by the delta method (``gradient``: its derivative in each
        coefficient)."""
        g = np.asarray(gradient, dtype=np.float64)
        spread = math.sqrt(max(float(g @ self.covariance @ g), 0.0))
        z = float(_stats().norm.ppf(0.5 + confidence / 2))
        return Estimate(value, value - z * spread, value + z * spread, self.n)


# Gauss-Hermite nodes for the noise on the log-odds: exact for polynomials of
# degree 39, far beyond what the logistic curve needs over a few noise sds.
HERMITE_NODES = 20


def logistic_model(
    events: Samples,
    offset: Samples,
    columns: Sequence[Samples] = (),
    noise_sd: float = 0.0,
) -> LogisticModel:
    """Maximum likelihood of P(event_i) = E[sigmoid(a + sum_j b_j x_ij + offset_i + e)],
    e ~ Normal(0, noise_sd), ``columns`` the x_j; Fisher scoring, the noise
    integrated by Gauss-Hermite quadrature. ValueError without both events and
    non-events (the log-odds is then infinite)."""
    y = np.asarray(events, dtype=np.float64)
    base = np.asarray(offset, dtype=np.float64)
    n = len(y)
    if n == 0 or y.sum() in (0, n):
        raise ValueError("a logistic fit needs both events and non-events")
    design = np.column_stack([np.ones(n)] + [np.asarray(x, dtype=np.float64) for x in columns])
    if noise_sd > 0:
        nodes, weights = np.polynomial.hermite.hermgauss(HERMITE_NODES)
        shifts, weights = math.sqrt(2) * noise_sd * nodes, weights / math.sqrt(math.pi)
    else:
        shifts, weights = np.zeros(1), np.ones(1)
    share = min(max(y.mean(), 1e-6), 1 - 1e-6)
    theta = np.zeros(design.shape[1])
    theta[0] = math.log(share / (1 - share)) - float(np.median(base))
    info = np.eye(design.shape[1])
    for _ in range(100):
        eta = design @ theta + base
        curve = 1.0 / (1.0 + np.exp(-(eta[:, None] + shifts[None, :])))
        p = np.clip(curve @ weights, 1e-12, 1 - 1e-12)
        slope = (curve * (1 - curve)) @ weights  # dp / d eta
        score = design.T @ ((y - p) / (p * (1 - p)) * slope)
        info = design.T @ (design * (slope**2 / (p * (1 - p)))[:, None])
        step = np.linalg.solve(info, score)
        theta = theta + step
        if float(np.max(np.abs(step))) < 1e-9:
            break
    covariance = np.asarray(np.linalg.inv(info), dtype=np.float64)
    return LogisticModel(theta, covariance, n, int(y.sum()))


__all__ = [
    "CONFIDENCE",
    "FAMILIES",
    "DurationFit",
    "Estimate",
    "LogisticModel",
    "exponential_mean",
    "exponential_sample_mean",
    "fit_duration",
    "logistic_model",
    "mean_estimate",
    "proportion",
    "rate_regime_start",
    "share_regime_start",
]
