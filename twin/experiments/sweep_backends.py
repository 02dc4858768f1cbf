"""Where a sweep's runs execute: a local process pool, or a Dask cluster.

Both take the same tasks and give back the same results in the same order
(``twin.experiments.sweep``): a task carries its own seed, so nothing depends on the
worker that ran it. ``map`` runs any importable function over items the same
way: the what-if's and the optimizer's replications use it. The process pool
is the default and needs nothing started. Dask runs on an existing scheduler
(``tcp://host:port``, whose workers must have factory-twin installed), or on a
``LocalCluster`` of worker processes that the backend starts and stops itself.

Cancelling: on any exception, KeyboardInterrupt (Ctrl-C) included, the
backend cancels what has not run, stops its worker processes (terminates the
pool's; closes the client and, if it started one, the local cluster) and
then lets the exception through, so no worker outlives the sweep. The pool's
workers and a local cluster's ignore SIGINT, so that a Ctrl-C in a terminal,
which reaches the whole process group, is handled once, by the parent.

The pool spawns fresh interpreters, which import the main module again: a
script that runs a sweep needs the ``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import gc
import importlib
import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from typing import Any, TypeVar

from twin.experiments.sweep import ProgressCallback, RunResult, RunTask, in_order, run_task

T = TypeVar("T")
R = TypeVar("R")
WORKER_STOP_TIMEOUT_S = 5.0
DASK_CONNECT_TIMEOUT_S = 10.0


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """A second Ctrl-C must not cut the clean-up short (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class ProcessPoolBackend:
    """A pool of ``workers`` local processes (spawned: no state copied from the parent)."""

    def __init__(self, workers: int | None = None) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1 (got {workers})")
        self.workers = workers or default_workers()
        self._pool: ProcessPoolExecutor | None = None  # kept by ``session``

    def _new_pool(self, workers: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_ignore_sigint,
        )

    @contextmanager
    def session(self) -> Iterator[ProcessPoolBackend]:
        """Keep one pool for every ``map`` inside: an optimizer's many small calls
        then pay the workers' start-up once."""
        self._pool = self._new_pool(self.workers)
        try:
            yield self
        finally:
            pool, self._pool = self._pool, None
            if pool is not None:
                pool.shutdown(wait=True)

    def run(
        self, tasks: Sequence[RunTask], progress: ProgressCallback | None = None
    ) -> list[RunResult]:
        return in_order(self.map(run_task, tasks, progress), tasks)

    def map(
        self,
        function: Callable[[T], R],
        items: Sequence[T],
        progress: Callable[[R], None] | None = None,
    ) -> list[R]:
        """``function`` over ``items`` on the pool, results in the items' order;
        ``function`` must be importable by a fresh interpreter (module level)."""
        if not items:
            return []
        kept = self._pool
        pool = kept if kept is not None else self._new_pool(min(self.workers, len(items)))
        results: dict[int, R] = {}
        try:
            # The pool starts its workers while tasks are submitted; with SIGINT
            # ignored then, they are born ignoring it, with no window before the
            # initializer runs (a sub-second pause in which Ctrl-C is not heard).
            with _sigint_ignored():
                futures = {pool.submit(function, item): index for index, item in enumerate(items)}
            for future in as_completed(futures):
                result = future.result()
                results[futures[future]] = result
                if progress is not None:
                    progress(result)
        except BaseException:
            with _sigint_ignored():
                _stop_pool(pool)
                self._pool = None  # a session's pool is gone with it
            raise
        if kept is None:
            pool.shutdown(wait=True)
        return [results[index] for index in range(len(items))]


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and end the workers now, running tasks included."""
    terminate = getattr(pool, "terminate_workers", None)  # Python 3.14+
    if terminate is not None:
        terminate()
        return
    # Before 3.14 the pool has no public way to stop running work: take its
    # processes before shutdown() forgets them, then terminate them.
    processes: list[Any] = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(WORKER_STOP_TIMEOUT_S)
        if process.is_alive():
            process.kill()
            process.join(WORKER_STOP_TIMEOUT_S)


class DaskBackend:
    """Dask distributed: an existing scheduler, or a LocalCluster started for the run."""

    def __init__(self, scheduler: str | None = None, workers: int | None = None) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1 (got {workers})")
        self.scheduler = scheduler
        self.workers = workers or default_workers()
        self._kept: tuple[Any, Any] | None = None  # (cluster, client) of a ``session``

    def _connect(self, workers: int) -> tuple[Any, Any]:
        if self.scheduler is None:
            return start_local_cluster(workers)
        dask: Any = importlib.import_module("distributed")
        return None, dask.Client(self.scheduler, timeout=DASK_CONNECT_TIMEOUT_S)

    @contextmanager
    def session(self) -> Iterator[DaskBackend]:
        """Keep one client (and local cluster) for every ``map`` inside."""
        self._kept = self._connect(self.workers)
        try:
            yield self
        finally:
            kept, self._kept = self._kept, None
            if kept is not None:
                _close_dask(kept[1], kept[0])

    def run(
        self, tasks: Sequence[RunTask], progress: ProgressCallback | None = None
    ) -> list[RunResult]:
        return in_order(self.map(run_task, tasks, progress), tasks)

    def map(
        self,
        function: Callable[[T], R],
        items: Sequence[T],
        progress: Callable[[R], None] | None = None,
    ) -> list[R]:
        """``function`` over ``items`` on the cluster, results in the items' order;
        the workers must be able to import ``function``."""
        if not items:
            return []
        # Imported here: dask is needed only by this backend. Its API is untyped.
        dask: Any = importlib.import_module("distributed")

        kept = self._kept
        cluster: Any = None
        client: Any = None
        futures: list[Any] = []
        results: dict[int, R] = {}
        try:
            if kept is not None:
                cluster, client = kept
            else:
                cluster, client = self._connect(min(self.workers, len(items)))
            # pure=False: every task is its own run, even if two looked alike.
            futures = client.map(function, list(items), pure=False)
            index_of = {future.key: index for index, future in enumerate(futures)}
            for future in dask.as_completed(futures):
                result: R = future.result()
                results[index_of[future.key]] = result
                if progress is not None:
                    progress(result)
        except BaseException:
            with _sigint_ignored():
                if client is not None and futures:
                    client.cancel(futures)
                _close_dask(client, cluster)
                self._kept = None  # a session's cluster is gone with it
            raise
        if kept is None:
            _close_dask(client, cluster)
        return [results[index] for index in range(len(items))]


def start_local_cluster(workers: int) -> tuple[Any, Any]:
    """A Dask LocalCluster of ``workers`` processes, one thread each, and its client.

    The workers' profiler is off: it samples the running task every 10 ms from
    another thread and takes the interpreter lock from the simulation each time
    (about 5% of a run, measured by bench/scaling.py). See ``_settle_worker``
    for the rest.
    """
    dask: Any = importlib.import_module("dask")
    distributed: Any = importlib.import_module("distributed")
    # The nannies made while this is set hand it to their worker processes. The
    # event-loop watchdog (every 20 ms), the system monitor (every 0.5 s) and the
    # memory monitor (every 0.1 s) wake the worker's other thread, which then takes
    # the interpreter lock from the task: a few per cent of every run. They report
    # on the cluster, not on the runs, so they run rarely here.
    quiet = {
        "distributed.worker.profile.enabled": False,
        "distributed.admin.tick.interval": "1s",
        "distributed.admin.system-monitor.interval": "5s",
        "distributed.worker.memory.monitor-interval": "1s",
    }
    with dask.config.set(quiet):
        cluster = distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
    client = distributed.Client(cluster)
    client.run(_settle_worker)
    return cluster, client


def _settle_worker() -> None:
    """Ready a Dask worker for simulations: Ctrl-C is the parent's; the simulator
    is imported now, not by the first task; and what the worker holds so far
    (Dask's own large object graph) is frozen out of the garbage collector, which
    would otherwise walk it again on every full collection during a run."""
    _ignore_sigint()
    importlib.import_module("twin.experiments.sweep")
    gc.freeze()


def _close_dask(client: Any, cluster: Any) -> None:
    if client is not None:
        client.close()
    if cluster is not None:
        cluster.close()


__all__ = ["DaskBackend", "ProcessPoolBackend", "default_workers", "start_local_cluster"]
