"""One random-number stream per source of randomness: common random numbers that work.

A run draws arrivals, the product mix, each station's processing times and
quality, and each machine's failures, repairs, microstops, setups and
maintenance. With one generator for all of them, any change that moves one
event (a faster speed setpoint, another temperature) shifts every later draw to
another purpose, and two runs on the same seed share nothing but the seed. Each
source here draws from its own stream, seeded from the run's seed and the
source's name: the *k*-th failure of machine 2 at welding comes from the same
number whatever the setpoints, and a faster speed scales the same processing-time
draws. Runs that differ only in their setpoints then meet the same luck, so
their difference is measured with far less noise (common random numbers, as in
Law, *Simulation Modeling and Analysis*, ch. 11). See docs/optimizer.md.
"""

from __future__ import annotations

import random

# Names how draws map to sources: a cache of simulated results (a benchmark's truth)
# made under another layout is stale even when the line file is the same.
LAYOUT = "one stream per source, v1"


class Streams:
    """Named, independent generators derived from one base number."""

    def __init__(self, base: int) -> None:
        self.base = base

    def __call__(self, *names: object) -> random.Random:
        """The stream of the source ``names`` (for example "failures", "welding", 0)."""
        key = "/".join(str(name) for name in (self.base, *names))
        return random.Random(key)  # noqa: S311 - simulation


__all__ = ["LAYOUT", "Streams"]
