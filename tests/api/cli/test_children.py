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
from typing import Any

import pytest
from helpers import REPO, wait_until

from api.children import stop_process

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


# A job's training in a spawned child (api.children.start_child): its simulation
# sends nothing for minutes, so only the watch on the parent can stop it.
FUNCTION_PARENT = textwrap.dedent(
    """
    import tempfile, time
    from pathlib import Path
    from api.children import start_child
    from api.training import TrainingRequest, train_in_child
    from twin.config.line import load_config
    if __name__ == "__main__":
        work = Path(tempfile.mkdtemp(prefix="factory-twin-orphan-"))
        request = TrainingRequest(load_config(), work / "report", work / "models", hours=50000)
        child, _ = start_child(train_in_child, (request,), "orphan-test")
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


@pytest.mark.parametrize("code", [PARENT, FUNCTION_PARENT], ids=["command", "function"])
def test_a_job_child_ends_when_its_parent_is_killed(code: str) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO
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


# A child that says it is ready once its SIGTERM handler is set, then either
# ends on SIGTERM with code 3 or ignores it.
POLITE = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))\n"
    "print('ready', flush=True)\n"
    "time.sleep(600)\n"
)
DEAF = POLITE.replace("lambda *_: sys.exit(3)", "signal.SIG_IGN")


def _ready_child(code: str) -> subprocess.Popen[str]:
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    return child


def test_stop_process_returns_the_code_of_a_child_that_stops_when_asked() -> None:
    child = _ready_child(POLITE)
    assert stop_process(child, signal.SIGTERM, grace_s=60) == 3


def test_stop_process_kills_a_child_that_ignores_the_signal() -> None:
    child = _ready_child(DEAF)
    assert stop_process(child, signal.SIGTERM, grace_s=0.5) == -signal.SIGKILL
    assert child.poll() == -signal.SIGKILL


def test_stop_process_leaves_an_ended_child_alone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "raise SystemExit(5)"])
    child.wait(60)
    assert stop_process(child) == 5


def _report_niceness(connection: Any) -> None:
    connection.send(os.nice(0))


def test_a_background_child_runs_below_its_parent() -> None:
    """A shadow forecast nobody waits for runs BACKGROUND_NICE steps below the
    live line; a child started without ``nice`` runs at the parent's priority."""
    from api.children import BACKGROUND_NICE, start_child

    mine = os.nice(0)
    seen = []
    for nice in (0, BACKGROUND_NICE):
        child, connection = start_child(_report_niceness, (), "nice-test", nice=nice)
        assert connection.poll(60), "the child sent nothing"
        seen.append(connection.recv())
        child.join(30)
    assert seen == [mine, min(19, mine + BACKGROUND_NICE)]
