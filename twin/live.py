"""Live mode: run the plant in scaled real time on a background thread.

``speed`` is simulated seconds per wall-clock second (60 = one simulated
minute per second). The SimPy realtime environment is non-strict, so a busy
machine lets the simulation fall behind rather than fail. The loop advances in
short wall-clock slices so that stop, pause and speed changes take effect
within one slice.

SimPy is not thread-safe: anything that touches the plant from another thread
(an MQTT command, say) goes through ``call_soon``, which runs it on the plant's
thread between two slices.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

import simpy.rt

log = logging.getLogger(__name__)
SLICE_WALL_S = 0.1
MIN_SPEED = 0.1
MAX_SPEED = 100_000.0


def realtime_environment(speed: float) -> simpy.rt.RealtimeEnvironment:
    if not speed > 0:
        raise ValueError(f"speed must be > 0 (got {speed})")
    return simpy.rt.RealtimeEnvironment(factor=1.0 / speed, strict=False)


def resync(env: simpy.rt.RealtimeEnvironment) -> None:
    """Anchor the realtime clock at the current simulation time.

    ``RealtimeEnvironment.sync`` resets only the wall-clock anchor and keeps
    the simulation anchor at the start, so after a pause or a speed change the
    simulation would stall until the old schedule caught up.
    """
    env.env_start = env.now
    env.real_start = time.monotonic()


class LiveRunner:
    """Drives a realtime SimPy environment until stopped; pausable, re-speedable."""

    def __init__(self, env: simpy.rt.RealtimeEnvironment, speed: float) -> None:
        self.env = env
        self.speed = speed
        self.paused = False
        self._stop = threading.Event()
        self._calls: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        # Told after a pause, a resume or a change of speed (on the plant's thread):
        # the publisher announces it, so that the twin learns it over MQTT.
        self._listeners: list[Callable[[], None]] = []

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after every pause, resume and change of speed."""
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in self._listeners:
            try:
                listener()
            except Exception:
                log.exception("a listener of the live runner failed")

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
        resync(self.env)
        try:
            while not self._stop.is_set():
                self._drain()
                if self.paused:
                    self._stop.wait(SLICE_WALL_S / 2)
                    continue
                self.env.run(until=self.env.now + SLICE_WALL_S * self.speed)
        except BaseException as exc:
            self.error = exc
            log.exception("the plant stopped on an error")

    # These run on the plant's thread (through call_soon) or before start.
    def pause(self) -> None:
        if not self.paused:
            self.paused = True
            self._changed()

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            resync(self.env)  # real time starts again from now: no stall, no burst
            self._changed()

    def set_speed(self, speed: float) -> None:
        if not MIN_SPEED <= speed <= MAX_SPEED:
            raise ValueError(f"speed must be between {MIN_SPEED} and {MAX_SPEED} (got {speed})")
        self.speed = speed
        resync(self.env)
        self.env._factor = 1.0 / speed  # noqa: SLF001 - simpy.rt has no setter
        self._changed()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
