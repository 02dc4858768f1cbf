"""The pacer: the speed in force of a simulated line from the pressure on its pipeline.

A pressure is the load of the pipeline (the publisher's outbox, the twin's lag, the
plant's own delay) as a share of its bound: 1 at the bound. The pipeline is a
backlog, so the pressure answers a speed late and by its integral: a speed a little
too fast fills it slowly, a cut shows only once the backlog drains. A pacer that
only reacts to it hunts: it keeps cutting while an old backlog drains, then climbs
fast from far too low and overshoots again.

So the pacer remembers its **ceiling**: the speed at its last cut, which proved too
fast, or the speed a braked line carried. It cuts multiplicatively, climbs back
quickly to ``approach`` of the ceiling, holds there, and only after a calm of
``probe_after_s`` climbs further, additively and slowly, to find out whether the
pipeline carries more now; the probe stops at the first sign of a backlog. A probe
that ends in a cut doubles the calm before the next one (up to
``max_probe_after_s``): a line whose pipeline does not change settles just below
its ceiling and overshoots rarely.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# The lowest speed a live line runs at (line seconds a wall second).
MIN_SPEED = 0.1
# A rise of the pressure over a window smaller than this is noise (a share of the bound).
RISE_MARGIN = 0.02
# The weight of a new look in the smoothed pressure the trend is judged on: a
# backlog's own noise (packets written in bursts) is no trend.
SMOOTHING = 0.3
# Seconds of a probe finding room after which it climbs twice as fast as at first.
PROBE_GROWTH_S = 30.0
# A speed within this share under the plateau is at it.
PLATEAU_MARGIN = 0.01
# A probe needs a pipeline this idle (a share of ``Pacer.low``): with a backlog left
# it would only hide how fast it fills.
IDLE_SHARE = 1 / 3


@dataclass
class Pacer:
    """Multiplicative decrease, quick climb to below the ceiling, slow probe above it.

    ``high``/``low``: the pressure at which it cuts, and at or under which it rises.
    A backlog answers a cut late, so the pacer judges it over windows of
    ``window_s``: at ``high`` or more it cuts once at once, and again only when
    the pressure did not fall over a window (a draining backlog is left to drain);
    between ``low`` and ``high`` a pressure that rose over a window says the speed
    is just too fast, and it steps down to ``approach`` of it. Nothing rises for
    ``window_s`` after a cut."""

    high: float = 1.0
    low: float = 0.3
    cut: float = 0.7
    deepest_cut: float = 0.5
    rise: float = 1.1
    approach: float = 0.9
    probe_per_s: float = 0.005
    probe_after_s: float = 10.0
    max_probe_after_s: float = 320.0
    window_s: float = 2.0
    floor: float = MIN_SPEED
    ceiling: float = math.inf
    cuts: int = 0
    _cut_at: float = -math.inf
    _over_since_cut: bool = False
    _mark: tuple[float, float] | None = None
    _calm_since: float | None = None
    _probe_wait_s: float = math.nan
    _looked_at: float | None = None
    # The pressure rose over the last window (held until the next one ends).
    _rising: bool = False
    _smooth: float = 0.0
    _jitter: float = 0.0
    _probing: bool = False
    _probe_since: float = 0.0
    _after_probe: bool = False

    def next_speed(
        self,
        asked: float,
        in_force: float,
        pressure: float,
        previous: float,
        now: float,
    ) -> float:
        """The speed in force for the next interval, from the pressure now and at the
        previous look; ``now``: monotonic seconds."""
        since_look = 0.0 if self._looked_at is None else max(0.0, now - self._looked_at)
        self._looked_at = now
        speed = min(asked, in_force)
        # Two looks in a row: a spike of one look (a pause of the collector, a busy
        # core) is no backlog, and the brake is there for a real burst.
        pressure = min(pressure, previous)
        self._jitter += SMOOTHING * (abs(pressure - self._smooth) - self._jitter)
        smooth = self._smooth = self._smooth + SMOOTHING * (pressure - self._smooth)
        if pressure > self.low:
            self._calm_since = None
            rising = self._rose(smooth, now)
            if now - self._cut_at < self.window_s:
                return speed  # the last cut has not shown yet
            if pressure >= self.high and (rising or not self._over_since_cut):
                self._over_since_cut = True
                # The further past its bound, the deeper the cut (to ``deepest_cut``).
                factor = max(self.deepest_cut, min(self.cut, 1.0 / pressure))
                return self._cut(speed, speed, speed * factor, pressure, now)
            if rising and pressure < self.high:
                # A backlog that keeps growing under the bound: a little too fast.
                return self._cut(speed, speed, speed * self.approach, pressure, now)
            return speed
        self._over_since_cut = False
        rose = self._rose(smooth, now)
        plateau = self.approach * self.ceiling
        if rose and self._probing and speed > plateau:
            # A backlog growing under a probe: the probe's speed is too fast.
            return self._cut(speed, speed, speed * self.approach, pressure, now)
        if speed >= asked or now - self._cut_at < self.window_s:
            self._calm_since = None
            return speed
        if self._calm_since is None:
            self._calm_since = now
            self._after_probe = False
        if speed < plateau:
            return min(asked, plateau, speed * self.rise)
        if (
            self._rising
            or pressure > self.low * IDLE_SHARE
            or now - self._calm_since < self._probe_wait()
        ):
            return speed  # a probe waits for an idle pipeline, and stops at a backlog
        if not self._probing:
            self._probing, self._probe_since = True, now
        # Probing: a step the size of the time since the last look (at most a second,
        # so a long gap between two looks does not leap), of ``probe_per_s`` of the
        # speed (at least the ceiling's) a second at first, and more the longer the
        # probe finds room: a pipeline that now carries far more is found in a minute
        # or two, one that carries what it did is passed by little.
        rate = self.probe_per_s * (1 + (now - self._probe_since) / PROBE_GROWTH_S)
        step = rate * max(self.ceiling, speed) * min(since_look, 1.0)
        return min(asked, speed + step)

    def braked(self, in_force: float, carried: float, pressure: float, now: float) -> float:
        """A line that kept waiting for its pipeline for a while carried ``carried``
        (line seconds a wall second): that is its ceiling, and it runs below it so
        that the backlog drains. A cut a window at the most.

        A spell spent (nearly) all in waiting, under a tenth of the speed in force,
        is a stall: a pipeline starting, or held up, carries nothing whatever the
        speed. Below the plateau (at a start, or climbing back) it says nothing of
        the ceiling, and the speed is halved; at the plateau, the pipeline carries
        less than it did: the ceiling comes down to a tenth of the speed in force."""
        if now - self._cut_at < self.window_s:
            return in_force  # the last cut has not shown yet
        self._over_since_cut = True
        stalled = carried < in_force / 10
        if stalled and in_force < self.approach * self.ceiling * (1 - PLATEAU_MARGIN):
            return self._cut(in_force, self.ceiling, in_force * self.deepest_cut, pressure, now)
        ceiling = min(in_force, max(carried, in_force / 10))
        return self._cut(in_force, ceiling, ceiling * self.cut, pressure, now)

    def _rose(self, pressure: float, now: float) -> bool:
        """True when the smoothed pressure rose by ``RISE_MARGIN`` (or its jitter)
        above its lowest since the last mark, at least ``window_s`` after it (a new
        mark starts); a pressure that falls moves the mark down. A slow rise shows
        too, once it adds up."""
        if self._mark is None or pressure < self._mark[1]:
            self._mark, self._rising = (now, pressure), False
            return False
        since, lowest = self._mark
        # A rise within the pressure's own jitter is none.
        margin = max(RISE_MARGIN, self._jitter)
        if now - since < self.window_s or pressure <= lowest + margin:
            return False
        self._mark, self._rising = (now, pressure), True
        return True

    def _probe_wait(self) -> float:
        return self.probe_after_s if math.isnan(self._probe_wait_s) else self._probe_wait_s

    def _cut(
        self, in_force: float, ceiling: float, speed: float, pressure: float, now: float
    ) -> float:
        if self._probing:
            # A probe ended in a cut: the pipeline carries no more than it did; probe
            # again later.
            self._probe_wait_s = min(self.max_probe_after_s, 2 * self._probe_wait())
            self._probing, self._after_probe = False, True
        elif not self._after_probe:
            # A cut at the plateau: the pipeline carries less than it did.
            self._probe_wait_s = self.probe_after_s
        self.ceiling = ceiling
        self.cuts += 1
        self._cut_at = now
        self._mark = (now, self._smooth)
        self._calm_since = None
        return max(self.floor, speed)
