"""README.md stays true: its examples run and its tables match the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from helpers import REPO

from api.cli import build_parser
from api.settings import Settings
from twin.config import parse_config

README = (REPO / "README.md").read_text()


def test_yaml_example_is_a_valid_line_config() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", README, flags=re.DOTALL)
    assert blocks, "README has no YAML example"
    for block in blocks:
        parse_config(yaml.safe_load(block), "README example")


def test_quickstart_is_two_commands() -> None:
    quickstart = README.split("## Quickstart", 1)[1].split("##", 1)[0]
    commands = re.findall(r"```sh\n(.*?)```", quickstart, flags=re.DOTALL)[0]
    lines = [line.split("#")[0].strip() for line in commands.strip().splitlines()]
    assert lines == ["make run", "make test"]


def test_settings_table_lists_every_setting_and_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)  # the documented default
    for name, field in Settings.model_fields.items():
        variable = f"FACTORY_TWIN_{name.upper()}"
        assert variable in README, f"{variable} is not documented"
        default = field.get_default(call_default_factory=True)
        if default is not None and not isinstance(default, bool):
            row = next(line for line in README.splitlines() if f"`{variable}`" in line)
            shown = f"{default:g}" if isinstance(default, float) else str(default)
            shown = shown.replace(str(Path.home()), "~", 1)  # paths under the user's home
            assert f"`{shown}`" in row, f"{variable}: default {shown} not in: {row}"
    up = build_parser()._subparsers._group_actions[0].choices["up"]  # type: ignore[union-attr]
    for action in up._actions:
        for option in action.option_strings:
            if option.startswith("--") and option != "--help":
                assert f"`{option}`" in README, f"{option} is not documented"


def test_the_model_commands_in_tuning_the_models_parse() -> None:
    section = README.split("## Tuning the models", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)[0]
    lines = [line.split("#")[0].split() for line in commands.strip().splitlines()]
    assert {line[1] for line in lines} == {"train", "tune", "optimize"}
    parser = build_parser()
    for line in lines:
        assert line[0] == "factory-twin"
        parser.parse_args(line[1:])  # an unknown flag or choice exits with an error
