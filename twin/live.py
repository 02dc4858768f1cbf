"""Live mode: run the plant in scaled real time on a background thread.

``speed`` is simulated seconds per wall-clock second (60 = one simulated
minute per second). The SimPy realtime environment is non-strict, so a busy
machine lets the simulation fall behind rather than fail. The loop advances in
short wall-clock slices so that ``stop`` takes effect within one slice.
"""

from __future__ import annotations

import logging
import threading

import simpy.rt

log = logging.getLogger(__name__)
SLICE_WALL_S = 0.1


def realtime_environment(speed: float) -> simpy.rt.RealtimeEnvironment:
    if not speed > 0:
        raise ValueError(f"speed must be > 0 (got {speed})")
    return simpy.rt.RealtimeEnvironment(factor=1.0 / speed, strict=False)


class LiveRunner:
    """Drives a realtime SimPy environment until stopped."""

    def __init__(self, env: simpy.rt.RealtimeEnvironment, speed: float) -> None:
        self.env = env
        self.speed = speed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="plant", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.env.sync()
        try:
            while not self._stop.is_set():
                self.env.run(until=self.env.now + SLICE_WALL_S * self.speed)
        except BaseException as exc:
            self.error = exc
            log.exception("the plant stopped on an error")

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
