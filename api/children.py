"""Background children of factory-twin: they end when their parent does.

The API's jobs and the first training run ``factory-twin`` commands as child
processes. Killed hard (kill -9), the parent cannot stop them, and a training
would go on taking a core for minutes. So the parent names itself in the
child's environment, and the child watches it: once its parent is gone (it is
adopted by another process), it stops itself as a SIGTERM would stop it. A
polling thread, not Linux's parent-death signal: that one fires when the
*thread* that started the child ends, and the first training is started from
the backfill's thread, which ends long before the training.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time

log = logging.getLogger(__name__)
PARENT_PID_VARIABLE = "FACTORY_TWIN_PARENT_PID"
PARENT_POLL_S = 1.0


def end_with_parent() -> None:
    """In a child started with ``child_environment``: stop when the parent is gone."""
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


__all__ = ["PARENT_PID_VARIABLE", "child_environment", "end_with_parent", "stop_process"]
