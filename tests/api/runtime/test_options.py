"""StackOptions from the settings ``up`` reads: units converted, secrets unwrapped,
and a twin-only stack that runs no plant, writes no backfill and trains nothing."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from api.runtime.options import StackOptions
from api.settings import Settings


def test_the_options_carry_the_settings_in_the_stacks_units(tmp_path: Path) -> None:
    settings = Settings(
        speed=120,
        seed=7,
        topic_root="plant7",
        mqtt_username="twin",
        mqtt_password=SecretStr("twin-secret"),
        influx_token=SecretStr("influx-secret"),
        mqtt_ca_file=tmp_path / "ca.pem",
        history_path=tmp_path / "history.sqlite3",
        history_retention_days=2,
        backfill_days=0.5,
        models_path=tmp_path / "models",
        future_tolerance_s=0,
        twin_max_stations=9,
    )
    options = StackOptions.from_settings(settings)
    assert (options.speed, options.seed, options.topic_root) == (120, 7, "plant7")
    assert (options.mqtt_username, options.mqtt_password) == ("twin", "twin-secret")
    assert options.influx_token == "influx-secret"
    assert options.mqtt_ca_file == str(tmp_path / "ca.pem")
    assert options.mqtt_cert_file is None
    assert options.history_path == str(tmp_path / "history.sqlite3")
    assert options.history_retention_s == 2 * 86400
    assert options.backfill_s == 0.5 * 86400
    assert options.models_path == str(tmp_path / "models")
    # 0 turns the check off: the stack takes None for that.
    assert options.future_tolerance_s is None
    assert options.max_stations == 9
    assert options.run_plant
    assert options.first_training


def test_a_twin_only_stack_runs_no_plant_and_no_backfill_or_first_training() -> None:
    options = StackOptions.from_settings(Settings(twin_only=True, backfill_days=3))
    assert not options.run_plant
    assert options.backfill_s == 0.0
    assert not options.first_training
