"""``factory-twin schemas``: the committed files are current, and a stale one is named."""

from __future__ import annotations

from pathlib import Path

from helpers import run_cli as run


def test_schemas_check_passes_on_the_committed_files() -> None:
    result = run("schemas", "--check", "--out", str(Path(__file__).parents[3] / "docs/schemas"))
    assert result.returncode == 0, result.stderr


def test_schemas_check_detects_stale_files(tmp_path: Path) -> None:
    assert run("schemas", "--out", str(tmp_path)).returncode == 0
    (tmp_path / "event.schema.json").write_text("{}\n")
    result = run("schemas", "--check", "--out", str(tmp_path))
    assert result.returncode == 1
    assert "event.schema.json" in result.stderr
