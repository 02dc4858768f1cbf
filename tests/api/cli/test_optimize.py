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

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "lines"


@pytest.mark.parametrize(
    ("config", "names", "message"),
    [
        ("smt.yaml", "printer.sped", "--vars: 'printer.sped': station 'printer' has no setpoint"),
        ("smt.yaml", "machining.speed", "--vars: 'machining.speed': unknown station 'machining'"),
        ("cnc_cell.yaml", "milling.speed:0", "--vars: 'milling.speed:0': the step must be"),
    ],
)
def test_an_unknown_setpoint_exits_2_naming_it(
    config: str, names: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("optimize", "--config", str(EXAMPLES / config), "--vars", names) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize(
    ("config", "names"),
    [
        ("smt.yaml", "printer.speed,reflow.temperature_c"),
        ("cnc_cell.yaml", None),  # its default space: its one setpoint with a range
    ],
)
def test_another_line_is_optimized_over_its_own_setpoints(
    config: str, names: str | None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = tmp_path / "result.json"
    code = run(
        "optimize", "--config", str(EXAMPLES / config), *(("--vars", names) if names else ()),
        "--budget", "3", "--hours", "4", "--replications", "2", "--seed", "2",
        "--report-dir", str(tmp_path / "report"), "--result-json", str(result),
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    outcome = json.loads(result.read_text())
    line = load_config(EXAMPLES / config)
    ranges = {
        f"{station.id}.{name}": getattr(station.process, name)
        for station in line.stations
        for name in ("speed", "temperature_c")
        if getattr(station.process, name) is not None
    }
    expected = names.split(",") if names else [k for k, r in ranges.items() if r.min < r.max]
    assert list(outcome["setpoints"]) == expected
    for key, value in outcome["setpoints"].items():
        assert ranges[key].min <= value <= ranges[key].max
        assert f"{key} = " in out
    # Confirmed on fresh runs, with an interval for each side and their difference.
    confirmation = outcome["confirmation"]
    for side in ("recommended", "current", "difference"):
        interval = confirmation[side]
        assert interval["low"] is not None, side
        assert interval["high"] is not None, side
        assert interval["low"] <= interval["mean"] <= interval["high"], side
    assert "difference" in out
    assert "the optimum's plateau" in out
    assert 0.0 < outcome["flatness"] <= 1.0
    assert outcome["verdict"] in {"change", "keep"}
    if outcome["verdict"] == "keep":
        assert "no significant gain: keep today's setpoints" in out
        # The line stays at today's values; the candidate is shown beside them.
        for key, today in confirmation["current_setpoints"].items():
            assert f"{key} = {today:g}  (best candidate " in out
    else:
        assert confirmation["difference"]["low"] > 0


def test_a_budget_below_two_is_refused_naming_the_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run("optimize", "--budget", "1") == 2
    assert "argument --budget: must be >= 2" in capsys.readouterr().err


def test_negative_doublings_are_refused_naming_the_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run("optimize", "--confirm-doublings", "-1") == 2
    assert "argument --confirm-doublings: must be >= 0" in capsys.readouterr().err


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
    # Today's machining speed given as its slowest (the bottleneck held back): the
    # best candidate's gain is significant on the fresh runs, so it is applied.
    slowest = next(s for s in stack.config.stations if s.id == "machining").process.speed.min
    code = run(
        "optimize", "--budget", "4", "--hours", "2", "--replications", "1", "--seed", "1",
        "--current", json.dumps({"machining.speed": slowest}),
        "--apply", "--mqtt-url", url, "--report-dir", str(tmp_path / "report"),
        "--result-json", str(tmp_path / "result.json"),
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert "recommended setpoints (a significant gain over today's)" in out
    outcome = json.loads((tmp_path / "result.json").read_text())
    assert outcome["verdict"] == outcome["confirmation"]["verdict"] == "change"
    recommended = outcome["setpoints"]
    assert recommended == outcome["confirmation"]["setpoints"]
    assert recommended["machining.speed"] > slowest
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
