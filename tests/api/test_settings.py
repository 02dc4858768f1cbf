"""Settings: the model registry's path comes from FACTORY_TWIN_MODELS_PATH here,
in the API's room, and the rooms below take it as an argument."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.settings import Settings, registry_path


def test_the_registry_is_the_setting_with_its_home_expanded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FACTORY_TWIN_MODELS_PATH", "~/registry")
    assert registry_path() == tmp_path / "home" / "registry"
    given = Settings(models_path=tmp_path / "given")
    assert registry_path(given) == tmp_path / "given"


def test_without_the_setting_the_registry_is_under_the_xdg_data_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FACTORY_TWIN_MODELS_PATH", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert registry_path() == tmp_path / "data" / "factory-twin" / "models"
