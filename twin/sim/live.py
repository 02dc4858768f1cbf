"""Live mode: run the plant in scaled real time on a background thread.

``speed`` is simulated seconds per wall-clock second (60 = one simulated
minute per second). The SimPy realtime environment is non-strict, so a busy
machine lets the simulation fall behind rather than fail. The loop advances in
short wall-clock slices so that stop, pause and speed changes take effect
within one slice.

SimPy is not thread-safe: anything that touches the plant from another thread
(an MQTT command, say) goes through ``call_soon``, which runs it on the plant's
thread between two slices.

**Pacing.** A simulated plant can run faster than its pipeline (publisher,
broker, ingest, twin) carries. It then lowers the speed in force below the speed
asked for, rather than outrun its twin unnoticed (``Pacer``): every
``PACE_WALL_S`` it reads its pressure probes (the publisher's outbox, the twin's
lag, each as a share of its bound) and its own schedule (a plant that cannot
keep its own pace is behind in wall time). At a pressure of 1 or more that is
not falling it cuts the speed in force; at ``Pacer.low`` or less it raises it
back towards the speed asked, quickly up to just below the speed of its last
cut and slowly beyond (``twin.sim.pacing``); in between it holds it. At
``BRAKE_PRESSURE`` it does not start the next slice until the probes fall below
it: a burst waits for the pipeline (and the time waited is not counted as the
plant falling behind).
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable

from twin.sim.pacing import MIN_SPEED, Pacer
from twin.sim.realtime import LiveEnvironment

__all__ = [
    "MAX_SPEED",
    "MIN_SPEED",
    "LiveEnvironment",
    "LiveRunner",
    "Pacer",
    "realtime_environment",
]

log = logging.getLogger(__name__)
SLICE_WALL_S = 0.1
MAX_SPEED = 100_000.0
# Wall seconds between two looks at the pressure (and changes of the speed in force).
PACE_WALL_S = 0.2
# Wall seconds a plant may fall behind its own schedule before that counts as a
# pressure of 1: the plant itself cannot keep the speed in force.
SCHEDULE_BOUND_S = 1.0
# A pressure at which the line stops between slices until the pipeline has room:
# the brake for a burst (a start or a new speed far above what it carries), which
# the slower change of speed would let through.
BRAKE_PRESSURE = 2.0
# Line seconds of one step of a slice, at most (``LiveRunner._slice``).
MAX_STEP_S = 10.0
# A pressure probe: the load of one stage of the pipeline as a share of its bound
# (0: idle, 1: at the bound).
PressureProbe = Callable[[], float]


def realtime_environment(speed: float) -> LiveEnvironment:
    if not 0 < speed < math.inf:
        raise ValueError(f"speed must be > 0 and finite (got {speed})")
    return LiveEnvironment(factor=1.0 / speed)


class LiveRunner:
    """Drives a realtime SimPy environment until stopped; pausable, re-speedable."""

    def __init__(self, env: LiveEnvironment, speed: float, pacer: Pacer | None = None) -> None:
        self.env = env
        # The speed asked for (at start, by set_speed) and the one in force: lower
        # while the pipeline carries no more (``Pacer``).
        self.speed = speed
        self.speed_in_force = speed
        self.pacer = pacer or Pacer()
        self._probes: list[PressureProbe] = []
        self.pressure = 0.0
        self.braking = False
        self._brake_mark = (0.0, 0.0)
        self._braked_at = -math.inf
        self._paced_at = time.monotonic()
        self._wall_unpaused = 0.0
        self.paused = False
        self._stop = threading.Event()
        self._calls: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        # Told after a pause, a resume or a change of speed (on the plant's thread):
        # the publisher announces it, so that the twin learns it over MQTT.
        self._listeners: list[Callable[[], None]] = []
        # Called on the plant's thread before every slice, paused or not (the
        # publisher's heartbeat).
        self._ticks: list[Callable[[], None]] = []

    def add_pressure(self, probe: PressureProbe) -> None:
        """Pace on ``probe()``: a stage's load as a share of its bound (1: at it)."""
        self._probes.append(probe)

    def _pressure(self) -> float:
        return max(self.behind_s() / SCHEDULE_BOUND_S, self._probed())

    def _probed(self) -> float:
        """The highest pressure of the probes (the pipeline's, not the plant's own)."""
        pressure = 0.0
        for probe in self._probes:
            try:
                pressure = max(pressure, float(probe()))
            except Exception:
                log.exception("a pressure probe of the live runner failed")
        return pressure

    def behind_s(self) -> float:
        """Wall seconds the plant is behind its own schedule (0 on time)."""
        return self.env.behind_s()

    def _pace(self) -> None:
        """Every ``PACE_WALL_S``: the speed in force from the pressure."""
        now = time.monotonic()
        wall = now - self._paced_at
        if wall < PACE_WALL_S:
            return
        self._paced_at = now
        pressure = self._pressure()
        speed = self.pacer.next_speed(self.speed, self.speed_in_force, pressure, self.pressure, now)
        self.pressure = pressure
        if speed != self.speed_in_force:
            if speed < self.speed_in_force:
                log.info(
                    "pacing: the pipeline carries no more (pressure %.2f): %gx in force, %gx asked",
                    pressure,
                    speed,
                    self.speed,
                )
            self._apply_speed(speed)
            self._changed()

    def _apply_speed(self, speed: float) -> None:
        self.speed_in_force = speed
        self.env.factor = 1.0 / speed  # re-anchored at now: the new pace from here on
        self._paced_at = time.monotonic()

    @property
    def paced(self) -> bool:
        """True while the speed in force is below the speed asked."""
        return self.speed_in_force < self.speed

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after every pause, resume and change of speed (asked or
        in force)."""
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in self._listeners:
            try:
                listener()
            except Exception:
                log.exception("a listener of the live runner failed")

    def add_tick(self, tick: Callable[[], None]) -> None:
        """Call ``tick()`` on the plant's thread before every slice, paused or not."""
        self._ticks.append(tick)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="plant", daemon=True)
        self._thread.start()

    def call_soon(self, call: Callable[[], None]) -> None:
        """Run ``call`` on the plant's thread before the next slice."""
        self._calls.put(call)

    def _drain(self) -> None:
        while True:
            try:
                call = self._calls.get_nowait()
            except queue.Empty:
                return
            try:
                call()
            except Exception:
                log.exception("a call on the plant thread failed")

    def _run(self) -> None:
        self.env.resync()
        try:
            while not self._stop.is_set():
                self._drain()
                for tick in self._ticks:
                    try:
                        tick()
                    except Exception:
                        log.exception("a tick of the live runner failed")
                if self.paused:
                    self._stop.wait(SLICE_WALL_S / 2)
                    continue
                if self._probed() >= BRAKE_PRESSURE:
                    self._brake()
                    continue
                if self.braking:
                    self.braking = False
                    self.env.resync()  # the time waited is not the plant falling behind
                self._pace()
                self._slice()
        except BaseException as exc:
            self.error = exc
            log.exception("the plant stopped on an error")

    def _brake(self) -> None:
        """Wait for the pipeline. A line that keeps braking runs slower than its speed
        in force says: every second of it, that speed comes down to what it did."""
        now = time.monotonic()
        if not self.braking and now - self._braked_at > 1.0:
            # A new spell of braking (short runs between brakes belong to the same).
            self._brake_mark = (now, float(self.env.now))
        self.braking = True
        self._braked_at = now
        self._stop.wait(SLICE_WALL_S / 2)
        since, sim_since = self._brake_mark
        wall = time.monotonic() - since
        if wall >= 1.0:
            achieved = (float(self.env.now) - sim_since) / wall
            speed = self.pacer.braked(self.speed_in_force, achieved, self._probed(), now)
            self._brake_mark = (time.monotonic(), float(self.env.now))
            if speed < self.speed_in_force:
                log.info(
                    "pacing: the line keeps waiting for its pipeline: %gx in force, %gx asked",
                    speed,
                    self.speed,
                )
                self._apply_speed(speed)
                self._changed()

    def _slice(self) -> None:
        """Run one slice of line time, in steps, and leave it early once it took
        twice its wall time (a plant that cannot keep up): the pressure is then looked
        at again before a fast line floods its pipeline with a whole slice."""
        env = self.env
        target = env.now + SLICE_WALL_S * self.speed_in_force
        # At most ten line seconds a step: at 100,000x a tenth of a slice would be a
        # thousand line seconds, tens of thousands of messages before a look.
        step = min((target - env.now) / 10, MAX_STEP_S)
        started = time.monotonic()
        while env.now < target and not self._stop.is_set():
            env.run(until=min(target, env.now + step))
            if time.monotonic() - started > 2 * SLICE_WALL_S:
                return

    # These run on the plant's thread (through call_soon) or before start.
    def pause(self) -> None:
        if not self.paused:
            self.paused = True
            self._changed()

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            self.env.resync()  # real time starts again from now: no stall, no burst
            self._paced_at = time.monotonic()
            self._changed()

    def set_speed(self, speed: float) -> None:
        if not MIN_SPEED <= speed <= MAX_SPEED:
            raise ValueError(f"speed must be between {MIN_SPEED} and {MAX_SPEED} (got {speed})")
        # While paced, a new speed asked starts from the one the pipeline carried
        # (the pacer raises it when there is room): no burst that floods it.
        in_force = min(speed, self.speed_in_force) if self.paced else speed
        self.speed = speed
        self._apply_speed(in_force)
        self._changed()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
