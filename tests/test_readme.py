"""README.md and the docs it sends a newcomer to stay true: the examples run,
the settings table matches the code, the links lead somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from helpers import REPO

from api.cli.main import build_parser
from api.settings import Settings
from twin.config.line import parse_config

README = (REPO / "README.md").read_text()
SETTINGS = (REPO / "docs" / "settings.md").read_text()
TUNING = (REPO / "docs" / "tuning.md").read_text()
# A newcomer's page: the quickstart, the URL table, the commands and links.
README_LIMIT_BYTES = 12 * 1024


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
    assert "docs/settings.md" in README
    for name, field in Settings.model_fields.items():
        variable = f"FACTORY_TWIN_{name.upper()}"
        assert variable in SETTINGS, f"{variable} is not documented"
        default = field.get_default(call_default_factory=True)
        if default is not None and not isinstance(default, bool):
            row = next(line for line in SETTINGS.splitlines() if f"`{variable}`" in line)
            shown = f"{default:g}" if isinstance(default, float) else str(default)
            shown = shown.replace(str(Path.home()), "~", 1)  # paths under the user's home
            assert f"`{shown}`" in row, f"{variable}: default {shown} not in: {row}"
    up = build_parser()._subparsers._group_actions[0].choices["up"]  # type: ignore[union-attr]
    for action in up._actions:
        for option in action.option_strings:
            if option.startswith("--") and option != "--help":
                assert f"`{option}`" in SETTINGS, f"{option} is not documented"
                assert option in README, f"{option} is missing from the README's synopsis"


def test_the_model_commands_in_tuning_the_models_parse() -> None:
    section = TUNING.split("# Tuning the models", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)[0]
    lines = [line.split("#")[0].split() for line in commands.strip().splitlines()]
    assert {line[1] for line in lines} == {"train", "tune", "optimize"}
    parser = build_parser()
    for line in lines:
        assert line[0] == "factory-twin"
        parser.parse_args(line[1:])  # an unknown flag or choice exits with an error


def test_the_readme_is_short_and_its_links_lead_somewhere() -> None:
    assert len(README.encode()) <= README_LIMIT_BYTES, len(README.encode())
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README):
        if "://" in target:
            continue
        assert (REPO / target).exists(), f"README links to {target}, which is not there"
    for page in (REPO / "docs").glob("*.md"):
        text = page.read_text()
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" in target or target.startswith("mailto:"):
                continue
            assert (page.parent / target).exists(), f"{page.name} links to {target}: not there"


def test_the_commands_with_bodies_in_the_readme_are_accepted_by_the_api() -> None:
    """Each body the README shows passes the API's own validation (the request
    models are strict: a typo there would be a 422 for the newcomer)."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from twin.state.line import TwinState

    token = "readme-token-0123456789abcdef"
    app = create_app(twin_state=TwinState("s", "a", "line1"), api_token=token)
    calls = re.findall(
        r"curl -s -X POST http://127\.0\.0\.1:8000(\S+) [^\n]*?(?:\\\n\s*)?-d '([^']*)'", README
    )
    assert len(calls) >= 6, calls
    with TestClient(app) as client:
        for path, body in calls:
            answer = client.post(
                path,
                content=body,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            # Past validation: no line is attached here, so 503 (or 404 for no
            # recommendation yet) is the expected answer, never a 422.
            assert answer.status_code != 422, (path, body, answer.text)
