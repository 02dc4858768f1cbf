"""Line config: the default loads, and every bad config names its field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from twin.config.line import (
    ConfigError,
    LineConfig,
    SensorFault,
    load_config,
    parse_config,
    with_changes,
    with_faults,
)


def default_data() -> dict[str, Any]:
    return load_config().model_dump(mode="json", exclude_none=True)


def test_default_line_has_five_stations_with_buffers_and_failures() -> None:
    config = load_config()
    assert [station.id for station in config.stations] == [
        "cutting",
        "machining",
        "welding",
        "painting",
        "inspection",
    ]
    assert all(config.buffer_capacity(index) >= 1 for index in range(1, 5))
    assert all(station.failures is not None for station in config.stations)
    assert all(
        0 < station.defect_probability < 1 or station.process.quality is not None
        for station in config.stations
    )


def test_round_trip_through_yaml(tmp_path: Path) -> None:
    path = tmp_path / "line.yaml"
    path.write_text(yaml.safe_dump(default_data()))
    assert load_config(path) == load_config()


def _error(data: object) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, "line.yaml")
    return str(caught.value)


def test_missing_field_is_named() -> None:
    data = default_data()
    del data["stations"][1]["processing_time"]
    message = _error(data)
    assert "stations[1].processing_time: required field is missing" in message


def test_wrong_type_is_named_with_the_value() -> None:
    data = default_data()
    data["stations"][2]["defect_probability"] = "often"
    message = _error(data)
    assert "stations[2].defect_probability" in message
    assert "'often'" in message


def test_negative_time_is_named() -> None:
    data = default_data()
    data["stations"][0]["processing_time"] = {"distribution": "exponential", "mean_s": -3}
    message = _error(data)
    assert "stations[0].processing_time.mean_s" in message
    assert "greater than 0" in message
    assert "-3" in message


def test_negative_repair_time_is_named() -> None:
    data = default_data()
    data["stations"][3]["failures"]["mttr_s"] = -60
    assert "stations[3].failures.mttr_s" in _error(data)


def test_unknown_distribution_lists_the_known_ones() -> None:
    data = default_data()
    data["stations"][0]["processing_time"] = {"distribution": "weibull", "mean_s": 3}
    message = _error(data)
    assert "stations[0].processing_time: unknown distribution 'weibull'" in message
    assert "lognormal" in message


def test_misspelt_field_is_rejected() -> None:
    data = default_data()
    data["stations"][0]["mtbf"] = 100
    assert "stations[0].mtbf: unknown field" in _error(data)


def test_duplicate_station_ids() -> None:
    data = default_data()
    data["stations"][1]["id"] = "cutting"
    assert "station id 'cutting' is used twice" in _error(data)


def test_failures_need_a_repair_time() -> None:
    data = default_data()
    del data["stations"][0]["failures"]["mttr_s"]
    assert "stations[0].failures.mttr_s: required field is missing" in _error(data)


def test_first_station_has_no_input_buffer() -> None:
    data = default_data()
    data["stations"][0]["input_buffer_capacity"] = 3
    assert "input_buffer_capacity does not apply" in _error(data)


def test_zero_buffer_capacity() -> None:
    data = default_data()
    data["stations"][1]["input_buffer_capacity"] = 0
    assert "stations[1].input_buffer_capacity" in _error(data)


def test_station_id_must_be_a_topic_level() -> None:
    data = default_data()
    data["stations"][1]["id"] = "weld/#"
    assert "stations[1].id" in _error(data)


def test_all_problems_are_reported_at_once() -> None:
    data = default_data()
    data["stations"][0]["processing_time"]["mean_s"] = -1
    data["stations"][4]["defect_probability"] = 2
    message = _error(data)
    assert message.startswith("line.yaml: 2 problems")
    assert "stations[0].processing_time.mean_s" in message
    assert "stations[4].defect_probability" in message


def test_not_a_mapping() -> None:
    assert "top level must be a mapping" in _error(["stations"])


def test_yaml_syntax_error_has_a_position(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("line:\n  id: x\nstations: [\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: not valid YAML at line \d+"):
        load_config(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_config_is_immutable() -> None:
    config = load_config()
    with pytest.raises(ValueError, match="frozen"):
        config.line.id = "other"  # type: ignore[misc]
    assert isinstance(config, LineConfig)


def test_conwip_line_without_wip_cap() -> None:
    data = default_data()
    data["release"] = {"policy": "conwip"}
    data["stations"][0].pop("input_buffer_capacity", None)
    message = _error(data)
    assert "release" in message
    assert "a conwip line needs wip_cap" in message


def test_open_line_without_interarrival() -> None:
    data = default_data()
    data["release"] = {"policy": "open"}
    assert "an open line needs interarrival" in _error(data)


def test_rework_to_an_unknown_station() -> None:
    data = default_data()
    data["stations"][3]["rework"] = {"probability": 0.5, "to": "polishing"}
    message = _error(data)
    assert "stations[3].rework.to: unknown station 'polishing'" in message
    assert "cutting" in message


def test_rework_cannot_go_downstream() -> None:
    data = default_data()
    data["stations"][1]["rework"] = {"probability": 0.5, "to": "inspection"}
    assert "is downstream" in _error(data)


def test_unknown_product_in_processing_times() -> None:
    data = default_data()
    data["stations"][0]["processing_time_by_product"] = {
        "gizmo": {"distribution": "deterministic", "mean_s": 3}
    }
    assert "unknown product 'gizmo'" in _error(data)


def test_setpoint_default_outside_its_range() -> None:
    data = default_data()
    data["stations"][1]["process"]["speed"]["default"] = 2.0
    message = _error(data)
    assert "stations[1].process.speed" in message
    assert "min <= default <= max" in message


def test_overlapping_planned_stops() -> None:
    data = default_data()
    data["calendar"]["planned_downtime"].append({"start_h": 10.25, "duration_h": 1})
    assert "calendar: planned stops overlap" in _error(data)


def test_every_distribution_is_accepted() -> None:
    data = default_data()
    for index, duration in enumerate(
        [
            {"distribution": "deterministic", "mean_s": 30},
            {"distribution": "gamma", "mean_s": 30, "cv": 0.5},
            {"distribution": "erlang", "mean_s": 30, "k": 4},
            {"distribution": "empirical", "values_s": [28, 30, 35], "weights": [1, 2, 1]},
            {"distribution": "triangular", "min_s": 20, "mode_s": 30, "max_s": 45},
        ]
    ):
        data["stations"][index]["processing_time"] = duration
    assert parse_config(data).stations[3].processing_time.mean == pytest.approx(30.75)


def test_with_changes_edits_by_dotted_path_and_validates() -> None:
    config = load_config()
    changed = with_changes(config, {"stations.1.process.speed.default": 1.2, "line.name": "B"})
    assert changed.stations[1].process.speed.default == 1.2
    assert changed.line.name == "B"
    assert config.stations[1].process.speed.default == 1.0  # the original is untouched
    with pytest.raises(ConfigError, match="stations\\[1\\].process.speed"):
        with_changes(config, {"stations.1.process.speed.default": 9})
    with pytest.raises(ConfigError, match="no field 'stations.9.id'"):
        with_changes(config, {"stations.9.id": "x"})


def test_with_faults_injects_them_in_place_of_the_lines_and_validates() -> None:
    config = load_config()
    stuck = SensorFault(
        station="welding", sensor="temperature_c", mode="stuck", start_h=1.0, duration_h=0.5
    )
    faulted = with_faults(config, [stuck])
    assert faulted.sensors.faults == [stuck]
    assert config.sensors.faults == []  # the original is untouched
    assert with_faults(faulted, []).sensors.faults == []
    # A fault the line cannot have is refused, by name, as in a line file.
    lost = stuck.model_copy(update={"station": "nowhere"})
    with pytest.raises(ConfigError, match="sensors.faults\\[0\\].station"):
        with_faults(config, [lost])


# -- planned runtime per unit (PRU) ---------------------------------------------------------
def test_pru_is_the_nominal_time_at_the_maximum_speed_per_product() -> None:
    config = load_config()
    cutting = config.stations[0]  # 38 s (bracket-l: 44 s), speed up to 1.3
    speed = cutting.process.speed
    assert speed.max > speed.default
    assert cutting.planned_runtime_per_unit_s() == pytest.approx(
        cutting.processing_time.mean / speed.max
    )
    large = cutting.processing_time_by_product["bracket-l"]
    assert cutting.planned_runtime_per_unit_s("bracket-l") == pytest.approx(large.mean / speed.max)
    # A product without its own time uses the station's.
    assert cutting.planned_runtime_per_unit_s("bracket-s") == cutting.planned_runtime_per_unit_s()


def test_an_explicit_pru_wins_and_may_be_faster_than_nominal() -> None:
    data = default_data()
    data["stations"][0]["ideal_cycle_time_s"] = 25.0
    data["stations"][0]["ideal_cycle_time_by_product_s"] = {"bracket-l": 30.0}
    cutting = parse_config(data).stations[0]
    assert cutting.planned_runtime_per_unit_s() == 25.0
    assert cutting.planned_runtime_per_unit_s("bracket-s") == 25.0
    assert cutting.planned_runtime_per_unit_s("bracket-l") == 30.0


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("ideal_cycle_time_s", 30.0, "stations[0]: ideal_cycle_time_s: 30 s exceeds"),
        (
            "ideal_cycle_time_by_product_s",
            {"bracket-l": 34.0},
            "stations[0]: ideal_cycle_time_by_product_s.bracket-l: 34 s exceeds",
        ),
    ],
)
def test_a_pru_slower_than_the_nominal_time_at_maximum_speed_is_refused(
    field: str, value: Any, expected: str
) -> None:
    data = default_data()
    data["stations"][0][field] = value  # nominal at max speed: 38 / 1.3 and 44 / 1.3 s
    message = _error(data)
    assert expected in message
    assert "nominal time at the maximum speed" in message


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("ideal_cycle_time_s", 0, "stations[0].ideal_cycle_time_s"),
        ("ideal_cycle_time_by_product_s", {"gizmo": 3.0}, "unknown product 'gizmo'"),
    ],
)
def test_a_bad_pru_names_the_field(field: str, value: Any, expected: str) -> None:
    data = default_data()
    data["stations"][0][field] = value
    assert expected in _error(data)
