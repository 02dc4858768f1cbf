"""Every subcommand, given a bad value, says so in one line and exits 2.

A user's typo is the user's to fix: the answer names the flag (or the file and
field) and what is wrong, never with a traceback, and nothing starts running
with a value that cannot mean anything (``--hours nan``, ``--workers 0``). The
commands run in process, so an exception escaping ``main`` fails the test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from api.cli.main import main

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
SPEC = str(EXAMPLES / "sweeps" / "buffers_and_crew.yaml")

# (arguments, what the one line must name)
CASES: list[tuple[list[str], str]] = [
    (["simulate", "--hours", "0"], "--hours"),
    (["simulate", "--hours", "nan"], "--hours"),
    (["simulate", "--hours", "inf"], "--hours"),
    (["simulate", "--hours", "1e308"], "--hours"),
    (["simulate", "--seed", "x"], "--seed"),
    (["simulate", "--seed", "-1"], "--seed"),
    (["simulate", "--replications", "0"], "--replications"),
    (["simulate", "--warmup", "-1"], "--warmup"),
    (["simulate", "--warmup", "nan"], "--warmup"),
    (["simulate", "--jobs", "0"], "--jobs"),
    (["simulate", "--config", "{missing}"], "config file not found"),
    (["simulate", "--config", "{bad_config}"], "stations[0].processing_time.mean_s"),
    (["up", "--speed", "0"], "--speed"),
    (["up", "--speed", "nan"], "--speed"),
    (["up", "--api-port", "70000"], "--api-port"),
    (["up", "--mqtt-port", "-5"], "--mqtt-port"),
    (["up", "--backfill-days", "-1"], "--backfill-days"),
    (["up", "--config", "{missing}"], "config file not found"),
    (["cmd", "line", "set_speed", "abc"], "factor"),
    (["cmd", "line", "set_speed"], "set_speed takes FACTOR"),
    (["cmd", "machining", "set_setpoint", "speed", "nan"], "value must be a finite"),
    (["cmd", "line", "pause", "--timeout", "0"], "--timeout"),
    (["cmd", "line", "pause", "--mqtt-port", "99999"], "--mqtt-port"),
    (["cmd", "line", "explode"], "action"),
    (["schemas", "--out", "{a_file}/schemas"], "--out"),
    (["train", "--hours", "0"], "--hours"),
    (["train", "--hours", "nan"], "--hours"),
    (["train", "--test-fraction", "2"], "--test-fraction"),
    (["train", "--threshold", "1.5"], "--threshold"),
    (["train", "--threads", "0"], "--threads"),
    (["train", "--explore-every", "-1"], "--explore-every"),
    (["train", "--seed", "-1"], "--seed"),
    (["train", "--days", "0"], "--days"),
    (["train", "--source", "csv"], "--source csv needs --csv"),
    (["train", "--source", "nowhere"], "--source"),
    (["tune", "--candidates", "0"], "--candidates"),
    (["tune", "--cv-splits", "1"], "--cv-splits"),
    (["optimize", "--budget", "1"], "--budget"),
    (["optimize", "--hours", "0"], "--hours"),
    (["optimize", "--replications", "0"], "--replications"),
    (["optimize", "--max-defect-rate", "2"], "--max-defect-rate"),
    (["optimize", "--workers", "0"], "--workers"),
    (["optimize", "--timeout", "-1"], "--timeout"),
    (["whatif"], "--snapshot"),
    (["whatif", "--snapshot", "{missing}"], "--snapshot"),
    (["whatif", "--snapshot", "{empty_json}"], "line: required field is missing"),
    (["whatif", "--snapshot", "{empty_json}", "--horizon-h", "0"], "--horizon-h"),
    (["whatif", "--snapshot", "{empty_json}", "--replications", "0"], "--replications"),
    (["whatif", "--snapshot", "{empty_json}", "--changes", "{not_json}"], "--changes"),
    (["sweep"], "spec"),
    (["sweep", "{missing}"], "sweep spec not found"),
    (["sweep", "{not_yaml}"], "not valid YAML"),
    (["sweep", SPEC, "--replications", "0"], "--replications"),
    (["sweep", SPEC, "--workers", "0"], "--workers"),
    (["nosuchcommand"], "nosuchcommand"),
]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    a_file = tmp_path / "a_file"
    a_file.write_text("not a directory")
    empty_json = tmp_path / "empty.json"
    empty_json.write_text("{}")
    not_json = tmp_path / "not.json"
    not_json.write_text("{bad")
    not_yaml = tmp_path / "not.yaml"
    not_yaml.write_text("factors: [\n")
    bad_config = tmp_path / "line.yaml"
    bad_config.write_text(
        "line: {id: l1}\n"
        "stations:\n"
        "  - {id: s1, processing_time: {distribution: exponential, mean_s: -5}}\n"
    )
    return {
        "missing": str(tmp_path / "missing.yaml"),
        "a_file": str(a_file),
        "empty_json": str(empty_json),
        "not_json": str(not_json),
        "not_yaml": str(not_yaml),
        "bad_config": str(bad_config),
    }


@pytest.mark.parametrize(("arguments", "named"), CASES, ids=[" ".join(case[0]) for case in CASES])
def test_a_bad_value_gives_one_line_and_exit_2(
    arguments: list[str],
    named: str,
    files: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Nothing from the developer's shell decides the answer.
    for name in ("FACTORY_TWIN_API_TOKEN", "FACTORY_TWIN_MQTT_URL", "FACTORY_TWIN_MQTT_PORT"):
        monkeypatch.delenv(name, raising=False)
    argv = [argument.format(**files) for argument in arguments]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert "error:" in lines[0]
    assert named in lines[0], lines[0]
    assert "Traceback" not in captured.err + captured.out


@pytest.mark.parametrize(
    ("variable", "value", "setting"),
    [
        ("FACTORY_TWIN_MQTT_PORT", "abc", "mqtt_port"),
        ("FACTORY_TWIN_MQTT_PORT", "70000", "mqtt_port"),
        ("FACTORY_TWIN_TOPIC_ROOT", "a/b", "topic_root"),
    ],
)
def test_a_bad_broker_setting_in_the_environment_is_named(
    variable: str,
    value: str,
    setting: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FACTORY_TWIN_MQTT_URL", raising=False)
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as exit_info:
        main(["cmd", "line", "pause", "--timeout", "1"])
    assert exit_info.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1
    assert setting in lines[0]
