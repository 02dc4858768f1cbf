"""Random durations: turning a configured distribution into a sampler.

Each sampler draws from the one seeded generator of its run, so the same seed
gives the same sequence of durations. Lognormal durations are parametrised by
their mean and coefficient of variation, which is how engineers quote cycle
times, and converted here to the underlying normal's mu and sigma.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from twin.config import Deterministic, Duration, Exponential, Lognormal, Triangular

Sampler = Callable[[], float]


def sampler(duration: Duration, rng: random.Random) -> Sampler:
    """A zero-argument function that draws one duration in seconds."""
    if isinstance(duration, Deterministic):
        value = duration.mean_s
        return lambda: value
    if isinstance(duration, Exponential):
        rate = 1.0 / duration.mean_s
        return lambda: rng.expovariate(rate)
    if isinstance(duration, Lognormal):
        sigma = math.sqrt(math.log1p(duration.cv**2))
        mu = math.log(duration.mean_s) - sigma**2 / 2
        return lambda: rng.lognormvariate(mu, sigma)
    if isinstance(duration, Triangular):
        low, mode, high = duration.min_s, duration.mode_s, duration.max_s
        return lambda: rng.triangular(low, high, mode)
    raise TypeError(f"unsupported distribution {duration!r}")
