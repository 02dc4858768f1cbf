"""Background children of factory-twin: they end when their parent does.

The API's jobs and the first training run in child processes: a
``factory-twin`` command, or a function in a fresh interpreter
(``start_child``). Killed hard (kill -9), the parent cannot stop them, and a training
would go on taking a core for minutes. So the parent names itself in the
child's environment, and the child watches it: once its parent is gone (it is
adopted by another process), it stops itself as a SIGTERM would stop it. A
polling thread, not Linux's parent-death signal: that one fires when the
*thread* that started the child ends, and the first training is started from
the backfill's thread, which ends long before the training.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

log = logging.getLogger(__name__)
PARENT_PID_VARIABLE = "FACTORY_TWIN_PARENT_PID"
PARENT_POLL_S = 1.0


def end_with_parent(parent: int | None = None) -> None:
    """In a child started with ``child_environment`` (or given its ``parent``'s
    pid): stop when the parent is gone."""
    if parent is None:
        expected = os.environ.get(PARENT_PID_VARIABLE)
        if not expected or not expected.isdigit():
            return
        parent = int(expected)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        log.warning("the parent process %d is gone: stopping", parent)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def child_environment(**extra: str) -> dict[str, str]:
    """The environment of a background ``factory-twin`` child of this process."""
    return {**os.environ, PARENT_PID_VARIABLE: str(os.getpid()), **extra}


# How much lower a background child that nobody waits for runs (os.nice): the
# periodic shadow forecasts then take the CPU the live line leaves idle, and do
# not slow the line and its twin (bench/end_to_end.py).
BACKGROUND_NICE = 10


def _child_main(
    target: Callable[..., None],
    args: tuple[Any, ...],
    connection: Connection,
    parent: int,
    nice: int = 0,
) -> None:
    end_with_parent(parent)
    if nice > 0:
        try:
            os.nice(nice)
        except OSError:  # not allowed here: run at the parent's priority
            log.debug("could not lower the priority of a background child", exc_info=True)
    target(*args, connection)


def start_child(
    target: Callable[..., None], args: tuple[Any, ...], name: str, *, nice: int = 0
) -> tuple[BaseProcess, Connection]:
    """Run ``target(*args, connection)`` in a fresh interpreter (``spawn``: never a
    fork of a process full of threads) that ends with this one, ``nice`` steps
    below this process's priority; the returned end of the pipe receives what it
    sends. ``target`` and ``args`` must pickle."""
    context = multiprocessing.get_context("spawn")
    receiving, sending = context.Pipe(duplex=False)
    process = context.Process(
        target=_child_main, args=(target, args, sending, os.getpid(), nice), name=name
    )
    process.start()
    sending.close()  # the child holds its own copy: the pipe ends when the child does
    return process, receiving


def stop_process(
    process: subprocess.Popen[bytes] | subprocess.Popen[str],
    how: signal.Signals = signal.SIGTERM,
    grace_s: float = 30.0,
    kill_grace_s: float = 10.0,
) -> int | None:
    """Ask a child to stop (``how``), give it ``grace_s`` to do so, then kill it.

    Returns its exit code, or None if it outlived even the kill's grace. A child
    that already ended is left alone.
    """
    if process.poll() is None:
        process.send_signal(how)
        try:
            return process.wait(grace_s)
        except subprocess.TimeoutExpired:
            log.warning("process %d did not stop within %g s: killing it", process.pid, grace_s)
            process.kill()
        try:
            return process.wait(kill_grace_s)
        except subprocess.TimeoutExpired:
            return None
    return process.returncode


__all__ = [
    "PARENT_PID_VARIABLE",
    "child_environment",
    "end_with_parent",
    "start_child",
    "stop_process",
]
