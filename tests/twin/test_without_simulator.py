"""A twin fed by a real line needs no simulator: its state, KPIs, history and the
ingest that feeds them import in a process where simpy cannot be imported."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# The modules a twin of a real line runs on: message-built state and its views,
# KPI and economics maths, history, the learnt line, and the ingest.
TWIN_SIDE = (
    "twin.state.line",
    "twin.state.economics",
    "twin.state.shifts",
    "twin.state.tallies",
    "twin.history.recorder",
    "twin.history.store",
    "twin.learning.observer",
    "sensors.ingest",
)

_BLOCKED = textwrap.dedent(
    """
    import importlib, sys

    class NoSimulator:
        def find_spec(self, name, path=None, target=None):
            if name == "simpy" or name.startswith("simpy."):
                raise ImportError("simpy is blocked in this process")
            return None

    sys.meta_path.insert(0, NoSimulator())
    for name in sys.argv[1:]:
        importlib.import_module(name)
    print(sorted(name for name in sys.modules if name == "simpy" or name.startswith("twin.")))
    """
)


def _import_without_simpy(*modules: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _BLOCKED, *modules],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_twin_side_imports_where_simpy_cannot_be_imported() -> None:
    done = _import_without_simpy(*TWIN_SIDE)
    assert done.returncode == 0, done.stderr
    loaded = done.stdout
    assert "'simpy'" not in loaded
    # Nothing of the simulator came along by another path.
    for simulator in (
        "twin.sim.plant",
        "twin.sim.machine",
        "twin.sim.station",
        "twin.sim.physics",
        "twin.sim.live",
        "twin.sim.report",
    ):
        assert f"'{simulator}'" not in loaded, f"{simulator} was imported: {loaded}"


def test_the_blocker_does_stop_a_module_that_needs_the_simulator() -> None:
    # The check above means something only if the blocker works: the plant needs simpy.
    done = _import_without_simpy("twin.sim.plant")
    assert done.returncode != 0
    assert "simpy is blocked" in done.stderr
