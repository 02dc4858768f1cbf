"""The pacer (twin.sim.pacing) against a synthetic pipeline, on a synthetic clock.

The pipeline is a backlog drained at a fixed capacity (messages a second): a line
at speed ``s`` adds ``s`` messages a line second, and the pacer sees the backlog
late (a few looks), as a share of its bound. Past twice the bound the line waits
for room, as ``LiveRunner`` brakes, and after a second of that the pacer hears
what it carried. The claims: the speed in force settles in a band just below the
capacity, whatever the speed asked; it overshoots the capacity rarely (a probe now
and then, ever rarer), never stays above it, and finds a capacity that changed.
No wall clock is involved.
"""

from __future__ import annotations

import random
import statistics
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from twin.sim.pacing import MIN_SPEED, Pacer

LOOK_S = 0.2
BOUND = 2_000.0
WARM_UP_S = 120.0


@dataclass
class Run:
    times: list[float]
    speeds: list[float]
    brakes: list[float]

    def after(self, start: float, end: float = float("inf")) -> list[float]:
        return [s for t, s in zip(self.times, self.speeds, strict=True) if start < t <= end]

    def crossings(self, capacity: float, start: float, end: float = float("inf")) -> list[float]:
        """When the speed in force went from at most the capacity to above it."""
        pairs = zip(self.times, self.speeds, self.speeds[1:], strict=False)
        return [t for t, a, b in pairs if start < t <= end and a <= capacity < b]


def run_pipeline(
    pacer: Pacer,
    asked: float,
    capacity: Callable[[float], float],
    seconds: float,
    delay_looks: int = 3,
    spike_every: int = 0,
    noise: float = 0.0,
) -> Run:
    jitter = random.Random(7)
    backlog, in_force, previous, now = 0.0, asked, 0.0, 0.0
    seen = deque([0.0] * delay_looks)
    brake_since: float | None = None
    carried = 0.0
    run = Run([], [], [])
    while now < seconds:
        drained = capacity(now) * LOOK_S
        produced = in_force * LOOK_S
        room = 2 * BOUND - backlog + drained
        if produced > room:  # the brake: the line waits for the pipeline
            produced = max(0.0, room)
            if brake_since is None:
                brake_since, carried = now, 0.0
        else:
            brake_since = None
        carried += produced
        backlog = max(0.0, backlog + produced - drained)
        seen.append(backlog)
        # The outbox as seen: packets go out in bursts, so it jitters about the backlog.
        pressure = max(0.0, seen.popleft() + jitter.uniform(-noise, noise)) / BOUND
        looks = len(run.times)
        if spike_every and looks % spike_every == 0:
            pressure += 1.5  # one look of a busy machine (the plant late on its schedule)
        now += LOOK_S
        if brake_since is not None and now - brake_since >= 1.0:
            run.brakes.append(now)
            in_force = pacer.braked(in_force, carried / (now - brake_since), pressure, now)
            brake_since, carried = now, 0.0
        else:
            in_force = pacer.next_speed(asked, in_force, pressure, previous, now)
        previous = pressure
        run.times.append(now)
        run.speeds.append(in_force)
    return run


def assert_settled(run: Run, capacity: float, start: float, end: float) -> None:
    speeds = run.after(start, end)
    # Just below the capacity: it carries most of what the pipeline can...
    assert 0.8 * capacity <= statistics.median(speeds) <= capacity
    assert min(speeds) >= 0.6 * capacity
    # ...and passes it only on a probe: briefly, a little, and rarely.
    assert max(speeds) <= 1.15 * capacity
    above = sum(1 for s in speeds if s > capacity) / len(speeds)
    assert above <= 0.15
    crossings = run.crossings(capacity, start, end)
    assert len(crossings) <= 8
    gaps = [b - a for a, b in zip(crossings, crossings[1:], strict=False)]
    # Ever rarer (the first overshoot after the warm-up may still end the approach).
    assert gaps[1:] == sorted(gaps[1:])
    assert not [t for t in run.brakes if start < t <= end]


@pytest.mark.parametrize(
    ("asked", "capacity"),
    [
        (1_000.0, 150.0),
        (1_000.0, 700.0),
        (100_000.0, 150.0),
        (100_000.0, 700.0),
        (100_000.0, 3_000.0),
    ],
)
def test_the_speed_in_force_settles_just_below_the_capacity(asked: float, capacity: float) -> None:
    run = run_pipeline(Pacer(), asked, lambda _: capacity, 900.0)
    assert_settled(run, capacity, WARM_UP_S, 900.0)


@pytest.mark.parametrize("delay_looks", [1, 10])
def test_it_settles_however_late_the_pressure_answers(delay_looks: int) -> None:
    run = run_pipeline(Pacer(), 100_000.0, lambda _: 700.0, 900.0, delay_looks)
    assert_settled(run, 700.0, WARM_UP_S, 900.0)


@pytest.mark.parametrize("capacity", [150.0, 700.0, 3_000.0])
def test_the_outbox_jittering_is_no_trend(capacity: float) -> None:
    # ±100 messages: about what a live line's outbox jitters by at a steady speed.
    run = run_pipeline(Pacer(), 100_000.0, lambda _: capacity, 900.0, noise=100.0)
    assert_settled(run, capacity, WARM_UP_S, 900.0)


@pytest.mark.parametrize("capacity", [150.0, 3_000.0])
def test_a_pipeline_that_carries_nothing_at_first_says_nothing_of_its_ceiling(
    capacity: float,
) -> None:
    """A start: the pipeline carries nothing for 20 s (the twin still subscribing),
    then its capacity. The stall slows the line but leaves no ceiling far too low."""
    run = run_pipeline(Pacer(), 100_000.0, lambda t: 0.0 if t < 20 else capacity, 900.0, noise=100)
    assert_settled(run, capacity, WARM_UP_S, 900.0)


def test_a_spike_of_one_look_is_no_backlog() -> None:
    run = run_pipeline(Pacer(), 100_000.0, lambda _: 700.0, 900.0, spike_every=37)
    assert_settled(run, 700.0, WARM_UP_S, 900.0)


def test_a_line_the_pipeline_carries_is_never_slowed() -> None:
    pacer = Pacer()
    run = run_pipeline(pacer, 500.0, lambda _: 700.0, 300.0)
    assert set(run.speeds) == {500.0}
    assert pacer.cuts == 0


def test_it_settles_again_when_the_pipeline_carries_less() -> None:
    run = run_pipeline(Pacer(), 100_000.0, lambda t: 700.0 if t < 600 else 350.0, 1_500.0)
    assert_settled(run, 700.0, WARM_UP_S, 600.0)
    assert_settled(run, 350.0, 600.0 + WARM_UP_S, 1_500.0)


def test_it_finds_a_pipeline_that_carries_more() -> None:
    run = run_pipeline(Pacer(), 100_000.0, lambda t: 700.0 if t < 600 else 1_400.0, 2_400.0)
    assert_settled(run, 700.0, WARM_UP_S, 600.0)
    # Probing is slow and ever rarer, but it gets there.
    assert_settled(run, 1_400.0, 1_200.0, 2_400.0)


def test_the_pacer_cuts_at_its_bound_holds_in_the_band_and_rises_below_it() -> None:
    pacer = Pacer()
    assert pacer.next_speed(1000, 1000, 0.5, 0.5, now=0.0) == 1000  # in the band: hold
    # One look past the bound is a spike; two are a backlog.
    assert pacer.next_speed(1000, 1000, 1.2, 0.5, now=0.8) == 1000
    cut = pacer.next_speed(1000, 1000, 1.2, 1.2, now=1.0)
    assert cut < 1000
    assert pacer.ceiling == 1000
    # Right after a cut, the same pressure does not cut again, and nothing rises.
    assert pacer.next_speed(1000, cut, 1.2, 1.2, now=1.2) == cut
    assert pacer.next_speed(1000, cut, 0.1, 0.1, now=1.4) == cut
    risen = pacer.next_speed(1000, cut, 0.1, 0.1, now=4.0)
    assert cut < risen <= pacer.approach * 1000
    # At the plateau under the ceiling it holds until the calm has lasted.
    plateau = pacer.approach * 1000
    assert pacer.next_speed(1000, plateau, 0.0, 0.0, now=5.0) == plateau
    assert pacer.next_speed(1000, 999, 0.0, 0.0, now=200.0) == 1000  # never above asked
    assert pacer.next_speed(1000, MIN_SPEED, 50.0, 50.0, now=300.0) == MIN_SPEED
