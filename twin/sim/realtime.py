"""The live plant's clock: SimPy's realtime environment, re-paceable while it runs.

``simpy.rt.RealtimeEnvironment`` runs one line second per ``factor`` wall
seconds, from two anchors: the line time ``env_start`` and the wall time
``real_start`` at which it was (or is to be) reached. SimPy sets the factor once,
at construction, and ``sync()`` moves only the wall anchor, so after a pause or a
change of speed the line would stall (or rush) until the old schedule caught up.
``LiveEnvironment`` adds what the live runner needs, without touching SimPy's
private state: its own ``factor`` (SimPy's ``step`` reads the public property,
which this class overrides), ``resync`` (both anchors at now), and how far the
line is behind its schedule.
"""

from __future__ import annotations

import math
import time

import simpy.rt


class LiveEnvironment(simpy.rt.RealtimeEnvironment):
    """A non-strict realtime environment (a busy machine lets the line fall behind
    rather than fail) whose pace can change while it runs."""

    def __init__(self, factor: float, initial_time: float = 0) -> None:
        super().__init__(initial_time=initial_time, factor=factor, strict=False)
        self._pace = _checked(factor)

    @property
    def factor(self) -> float:
        """Wall seconds per line second (1 / speed)."""
        return self._pace

    @factor.setter
    def factor(self, factor: float) -> None:
        """A new pace from now on: the schedule is re-anchored at the current time
        first, so that the line time already run keeps the pace it ran at."""
        factor = _checked(factor)
        self.resync()
        self._pace = factor

    def resync(self) -> None:
        """Anchor the schedule at the current line time and now: the line neither
        stalls nor rushes to make up wall time that passed without it (a pause)."""
        self.env_start = self.now
        self.real_start = time.monotonic()

    def behind_s(self) -> float:
        """Wall seconds the line is behind its schedule (0 on time)."""
        due = (self.now - self.env_start) * self.factor
        return max(0.0, time.monotonic() - self.real_start - due)


def _checked(factor: float) -> float:
    if not (factor > 0 and math.isfinite(factor)):
        raise ValueError(f"factor must be a finite number > 0 (got {factor})")
    return float(factor)
