"""A background child ends when its parent is killed hard.

The API's jobs and the first training run factory-twin commands as children.
After kill -9 of ``up`` nothing stops them, and a training went on taking a core
for 13 s (issue 15). Here a parent starts a long simulation as the API starts
its jobs, and is killed with SIGKILL: the child must end on its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from helpers import REPO, wait_until

pytestmark = pytest.mark.integration

PARENT = textwrap.dedent(
    """
    import subprocess, sys, time
    from api.children import child_environment
    child = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "simulate", "--hours", "50000"],
        env=child_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    print(child.pid, flush=True)
    time.sleep(600)
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie awaiting its (new) parent's wait counts as gone.
    status = f"/proc/{pid}/status"
    try:
        with open(status) as lines:
            return not any(line.startswith("State:\tZ") for line in lines)
    except FileNotFoundError:
        return False


def test_a_job_child_ends_when_its_parent_is_killed() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    try:
        assert _alive(child)
        # Still running a moment later: it is the parent's death that stops it.
        assert not wait_until(lambda: not _alive(child), timeout=3)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        assert wait_until(lambda: not _alive(child), timeout=60), "the child outlived its parent"
    finally:
        if _alive(child):
            os.kill(child, signal.SIGKILL)
