"""API tests run the command line as users do; keep them off the user's files.

The embedded history store defaults to ``$XDG_STATE_HOME/factory-twin``: each
test gets its own, and no backfill unless it asks for one (a week of simulated
history is a benchmark figure, not a test step).
"""

from __future__ import annotations

from pathlib import Path

import pytest

TEST_TOKEN = "test-token-0123456789abcdef"


@pytest.fixture(autouse=True)
def private_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("FACTORY_TWIN_BACKFILL_DAYS", "0")
    # An empty model registry of its own: live scoring is off unless a test registers.
    monkeypatch.setenv("FACTORY_TWIN_MODELS_PATH", str(tmp_path / "models"))
    # factory-twin up refuses to start without a real token outside --demo.
    monkeypatch.setenv("FACTORY_TWIN_API_TOKEN", TEST_TOKEN)
