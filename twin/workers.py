"""Background workers: a named daemon thread with a stop signal, started, stopped and
joined the same way wherever the twin runs one.

A ``Worker`` runs ``run(stop)`` on a thread of its own, where ``stop`` is a
``threading.Event`` that ``Worker.stop`` sets; the function is expected to return
soon after (a wait on ``stop`` wakes at once). ``stop`` waits for the thread up to
a timeout, says in the log when it did not end, and may be called any number of
times, before or after ``start``, and from the worker's own thread.

A ``Periodic`` worker calls ``tick()`` every ``period_s`` until stopped. A tick
that raises is logged with the worker's name and the loop goes on: one bad
sample must not end a sampler that the running process relies on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

__all__ = ["Periodic", "Worker"]


class Worker:
    """A named daemon thread that runs ``run(stop)`` until ``stop`` is set."""

    def __init__(self, name: str, run: Callable[[threading.Event], None]) -> None:
        self.name = name
        self._run = run
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"the worker {self.name!r} was started already")
        self._thread = threading.Thread(
            target=self._run, args=(self.stopping,), name=self.name, daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Ask the worker to stop and wait up to ``timeout`` s for its thread: True
        when it has ended (or never started)."""
        self.stopping.set()
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return thread is None
        thread.join(timeout)
        if thread.is_alive():
            log.warning("the worker %r did not stop within %.1f s", self.name, timeout)
            return False
        return True


class Periodic(Worker):
    """Calls ``tick()`` every ``period_s`` seconds until stopped; the first call comes
    one period after ``start``."""

    def __init__(self, name: str, period_s: float, tick: Callable[[], object]) -> None:
        if not period_s > 0:
            raise ValueError(f"period_s must be > 0 (got {period_s})")
        self.period_s = period_s
        self._tick = tick
        super().__init__(name, self._loop)

    def _loop(self, stop: threading.Event) -> None:
        while not stop.wait(self.period_s):
            try:
                self._tick()
            except Exception:
                log.exception("the worker %r: a tick failed", self.name)
