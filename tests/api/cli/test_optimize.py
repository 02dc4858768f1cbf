"""``factory-twin optimize`` as a user runs it: bad values refused naming the
flag, and ``--apply`` through a real broker to a running line, whose own
messages show that it took the recommended setpoints."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import assert_png, get_free_port, wait_until
from helpers import cli_main as run

from api.runtime.line import Stack
from api.runtime.options import StackOptions
from twin.config.line import load_config


def test_a_budget_below_two_is_refused_naming_the_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run("optimize", "--budget", "1") == 2
    assert "argument --budget: must be >= 2" in capsys.readouterr().err


@pytest.fixture
def stack() -> Iterator[Stack]:
    subject = Stack(load_config(), StackOptions(speed=600, seed=5, mqtt_port=get_free_port()))
    subject.start()
    try:
        yield subject
    finally:
        subject.stop()


@pytest.mark.integration
@pytest.mark.slow
def test_optimize_apply_sends_the_recommendation_to_the_running_line(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert stack.address is not None
    url = f"mqtt://{stack.address.host}:{stack.address.port}"
    code = run(
        "optimize", "--budget", "4", "--hours", "2", "--replications", "1", "--seed", "1",
        "--apply", "--mqtt-url", url, "--report-dir", str(tmp_path / "report"),
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    optimizer = json.loads((tmp_path / "report" / "optimizer.json").read_text())
    recommended = optimizer["best"]["setpoints"]
    assert out.count(": accepted") == len(recommended)
    for name in ("optimizer_trace.png", "response_surface.png"):
        assert_png(tmp_path / "report" / name)

    # The twin, fed only over MQTT, sees the line run at the recommended setpoints.
    def twin_shows_them() -> bool:
        view = stack.twin.view()
        process = {station.id: station.process for station in view.stations}
        return all(
            process.get(key.split(".")[0], {}).get(key.split(".")[1]) == pytest.approx(value)
            for key, value in recommended.items()
        )

    assert wait_until(twin_shows_them, timeout=30)
