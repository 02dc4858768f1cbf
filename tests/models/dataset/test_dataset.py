"""Datasets: the ground truth in plant events, the join of a part's points, the builders."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from helpers import MemoryClient

from models.dataset.parts import from_csv, from_history, from_simulation
from models.dataset.rows import DatasetError, PartDataset
from sensors.publisher import PlantPublisher
from sensors.topics import LineTopics
from twin.config.line import load_config
from twin.contract import PartFinished
from twin.history.points import Point
from twin.history.store import SqliteStore
from twin.sim.events import PartFinishedEvent, PlantEvent
from twin.sim.plant import Plant

if TYPE_CHECKING:
    from tests.models.conftest import FedHistory

BASE_MS = 1_700_000_000_000


# -- the ground truth --------------------------------------------------------------------------
def test_part_events_carry_the_quality_model_probability_but_never_publish_it() -> None:
    config = load_config()
    plant = Plant(config, seed=5)
    events: list[PartFinishedEvent] = []

    def keep(event: PlantEvent) -> None:
        if isinstance(event, PartFinishedEvent):
            events.append(event)

    plant.add_listener(keep)
    client = MemoryClient()
    topics = LineTopics(config.line.site, config.line.area, config.line.id)
    PlantPublisher(plant, client, topics, rng=random.Random(1)).attach()  # type: ignore[arg-type]
    plant.set_setpoint("welding", "temperature_c", 100.0)  # away from the best temperature
    plant.run(until=6 * 3600.0)

    specs = {spec.id: spec for spec in config.stations}
    assert {event.station for event in events} == set(specs)
    for event in events:
        spec = specs[event.station]
        quality = spec.process.quality
        assert event.process is not None
        if quality is None:
            assert event.defect_probability == spec.defect_probability
            continue
        # docs/physics.md, without the per-part noise.
        log_odds = math.log(quality.base_defect_probability / (1 - quality.base_defect_probability))
        log_odds += ((event.process["speed"] - quality.best_speed) / quality.speed_tolerance) ** 2
        if quality.best_temperature_c is not None:
            deviation = event.process["temperature_c"] - quality.best_temperature_c
            log_odds += (deviation / quality.temperature_tolerance_c) ** 2
        log_odds += quality.wear_sensitivity * event.process["wear"] ** 2
        assert event.defect_probability == pytest.approx(1 / (1 + math.exp(-log_odds)), rel=1e-4)
    finished = [
        payload for topic, payload, _qos, _retain in client.messages if b"part_finished" in payload
    ]
    assert len(finished) == len(events)
    assert not any(b"defect_probability" in payload for payload in finished)
    assert "defect_probability" not in PartFinished.model_fields


# -- the join, on points written by hand -------------------------------------------------------
def _part(station: str, t_s: float, part_id: int, outcome: str = "good") -> Point:
    """A part point whose speed is its time, so that every value says where it came from."""
    fields = {
        "good": float(outcome == "good"),
        "scrap": float(outcome == "scrap"),
        "rework": float(outcome == "rework"),
        "processing_time_s": t_s / 10,
        "part_id": float(part_id),
        "process_speed": t_s,
    }
    tags = {"site": "s", "area": "a", "line": "l", "origin": "live", "station": station}
    return Point("part", tags, fields, BASE_MS + int(t_s * 1000))


def _tags(station: str, **extra: str) -> dict[str, str]:
    return {"site": "s", "area": "a", "line": "l", "origin": "live", "station": station, **extra}


# Two runs of a line a -> b -> c; part ids restart at 0 in the second.
SCENARIO = [
    # run 1
    _part("a", 10, 0),
    _part("a", 15, 1),
    _part("a", 16, 2, "rework"),  # back to a
    _part("b", 20, 0),
    _part("b", 25, 1, "scrap"),
    _part("a", 26, 2),
    _part("c", 30, 0),
    _part("b", 35, 2),
    _part("a", 40, 3),
    _part("c", 45, 2),
    _part("b", 50, 3),  # part 3 is still in the line when run 1 ends
    # run 2
    _part("a", 1010, 0),
    _part("a", 1015, 1),
    _part("b", 1020, 0),
    _part("b", 1025, 1),
    _part("c", 1030, 0, "scrap"),
    _part("c", 1035, 1),
    _part("a", 1040, 3),
    _part("b", 1050, 3),
    _part("c", 1060, 3),
    _part("a", 1070, 4),
    _part("c", 1080, 4),  # its point at b was lost
]
# (part id, time it left, defect, failed at, speed at a, b, c: the time of the visit used)
EXPECTED = [
    (1, 25, 1, "b", 15, 25, 30),  # c: the part ahead of it at b (part 0) went on to c at 30
    (0, 30, 0, "", 10, 20, 30),
    (2, 45, 1, "a", 16, 35, 45),  # its first pass at a is where it failed
    (0, 1030, 1, "c", 1010, 1020, 1030),
    (1, 1035, 0, "", 1015, 1025, 1035),
    (3, 1060, 0, "", 1040, 1050, 1060),  # run 2's part 3, not run 1's
    (4, 1080, 0, "", 1070, math.nan, 1080),
]


@pytest.fixture
def scenario_store(tmp_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(tmp_path / "history.sqlite3", retention_ms=None)
    store.write(SCENARIO)
    # Telemetry at b: the value is the time in seconds, one sample a second.
    store.write(
        [
            Point("telemetry", _tags("b"), {"temperature_c": float(t)}, BASE_MS + t * 1000)
            for t in range(1, 1100)
        ]
    )
    # Part 0 of run 1 finished processing at b at 19 s, then waited for room at c.
    store.write(
        [
            Point("state", _tags("b", machine="0"), {"code": 0.0}, BASE_MS + 11_000),  # running
            Point("state", _tags("b", machine="0"), {"code": 5.0}, BASE_MS + 19_000),  # blocked
            Point("state", _tags("b", machine="0"), {"code": 4.0}, BASE_MS + 20_000),  # starved
            Point("state", _tags("b", machine="0"), {"code": 0.0}, BASE_MS + 21_000),
        ]
    )
    assert store.flush(10)
    yield store
    store.close()


def _speeds(dataset: PartDataset, row: int) -> list[float]:
    return [float(dataset.column(f"{station}__speed")[row]) for station in "abc"]


def test_points_are_joined_into_parts_across_runs(scenario_store: SqliteStore) -> None:
    dataset = from_history(scenario_store, BASE_MS, BASE_MS + 2_000_000, stations=["a", "b", "c"])
    assert len(dataset) == len(EXPECTED)
    for row, (part_id, left_s, defect, failed_at, *speeds) in enumerate(EXPECTED):
        assert dataset.part_id[row] == part_id
        assert dataset.left_at_ms[row] == BASE_MS + left_s * 1000
        assert dataset.defect[row] == defect
        assert dataset.defect_station[row] == failed_at
        np.testing.assert_array_equal(_speeds(dataset, row), speeds)
        # Processing times come from the same visit as the speeds.
        times = [float(dataset.column(f"{s}__processing_time_s")[row]) for s in "abc"]
        np.testing.assert_allclose(times, np.array(speeds) / 10)


def test_the_station_order_is_read_off_the_parts(scenario_store: SqliteStore) -> None:
    given = from_history(scenario_store, BASE_MS, BASE_MS + 2_000_000, stations=["a", "b", "c"])
    inferred = from_history(scenario_store, BASE_MS, BASE_MS + 2_000_000)
    assert inferred.feature_names == given.feature_names
    np.testing.assert_array_equal(inferred.features, given.features)


def test_sensor_windows_end_when_processing_ended(scenario_store: SqliteStore) -> None:
    dataset = from_history(
        scenario_store, BASE_MS, BASE_MS + 2_000_000, stations=["a", "b", "c"], sensor_window_s=5
    )
    means = dataset.column("b__temperature_c_mean")
    # Part 0 of run 1 was blocked from 19 s to 20 s: its window is (14 s, 19 s].
    assert means[1] == np.mean([15, 16, 17, 18, 19])
    # Part 1 was scrapped at 25 s, at the end of its processing: (20 s, 25 s].
    assert means[0] == np.mean([21, 22, 23, 24, 25])
    assert math.isnan(means[6])  # no point at b


def test_a_window_holds_the_parts_that_left_in_it(scenario_store: SqliteStore) -> None:
    start, end = BASE_MS + 28_000, BASE_MS + 1_040_000
    dataset = from_history(scenario_store, start, end, stations=["a", "b", "c"])
    expected = [e for e in EXPECTED if start <= BASE_MS + e[1] * 1000 < end]
    assert [int(p) for p in dataset.part_id] == [e[0] for e in expected]
    # Without reading back, the parts that entered before the window are not whole.
    short = from_history(scenario_store, start, end, stations=["a", "b", "c"], lookback_s=0)
    assert list(short.left_at_ms) == [
        BASE_MS + e[1] * 1000 for e in expected if e[4] * 1000 >= 28_000
    ]


# -- the builders ------------------------------------------------------------------------------
def test_simulation_rows_are_the_parts_that_left_the_line() -> None:
    """Labels checked against the plant's own events, joined here independently."""
    config = load_config()
    hours, seed = 30.0, 11
    dataset = from_simulation(config, hours, seed)
    plant = Plant(config, seed=seed)  # the same run
    failed_at: dict[int, str] = {}
    left: set[int] = set()

    def watch(event: PlantEvent) -> None:
        if isinstance(event, PartFinishedEvent):
            if event.outcome != "good":
                failed_at.setdefault(event.part_id, event.station)
            if event.outcome == "scrap" or event.exits_line:
                left.add(event.part_id)

    plant.add_listener(watch)
    plant.run(until=hours * 3600)
    assert len(dataset) == plant.parts_shipped + plant.parts_scrapped == len(left)
    assert sorted(dataset.part_id) == sorted(left)
    assert dataset.defect.sum() > 10
    for part_id, defect, station in zip(
        dataset.part_id, dataset.defect, dataset.defect_station, strict=True
    ):
        assert defect == (part_id in failed_at)
        assert station == failed_at.get(int(part_id), "")
    assert np.all(np.diff(dataset.left_at_ms) >= 0)
    oracle = dataset.oracle_probability
    assert oracle is not None
    assert np.all((oracle > 0) & (oracle < 1))
    # Defective parts had the higher true probability, on average.
    assert oracle[dataset.defect == 1].mean() > oracle[dataset.defect == 0].mean()
    assert "oracle_probability" not in dataset.feature_names
    assert not np.isnan(dataset.features).any()


@pytest.mark.slow
def test_history_and_simulation_describe_the_same_parts(
    mqtt_history: FedHistory, simulated_twin: PartDataset
) -> None:
    history = from_history(mqtt_history.store, mqtt_history.start_ms, mqtt_history.end_ms)
    simulated = simulated_twin
    assert mqtt_history.rejected == 0
    assert history.feature_names == simulated.feature_names
    assert history.columns == [c for c in simulated.columns if c != "oracle_probability"]
    assert history.oracle_probability is None
    assert len(history) > 1000
    np.testing.assert_array_equal(history.part_id, simulated.part_id)
    np.testing.assert_array_equal(history.defect, simulated.defect)
    np.testing.assert_array_equal(history.defect_station, simulated.defect_station)
    # The recorder moves a point 1 ms on when a station publishes two in one millisecond.
    assert np.abs(history.left_at_ms - simulated.left_at_ms).max() <= 2
    sensors = {
        (spec.id, name): getattr(spec.sensors, name)
        for spec in mqtt_history.config.stations
        for name in ("temperature_c", "vibration_mm_s", "spindle_rpm", "power_kw", "pressure_bar")
    }
    hours = (mqtt_history.end_ms - mqtt_history.start_ms) / 3_600_000
    for index, name in enumerate(history.feature_names):
        measured, true = history.features[:, index], simulated.features[:, index]
        station, feature = name.split("__")
        if not feature.endswith("_mean"):
            # Process values and processing times travel exactly.
            np.testing.assert_array_equal(measured, true, err_msg=name)
            continue
        # Telemetry differs by what measuring adds: noise, drift, resolution.
        spec = sensors[(station, feature.removesuffix("_mean"))]
        bound = 5 * spec.noise_sd + abs(spec.drift_per_h) * hours + spec.resolution
        assert np.nanmax(np.abs(measured - true)) <= bound, name
        assert np.isnan(measured).sum() == np.isnan(true).sum(), name


# -- CSV ---------------------------------------------------------------------------------------
def _small_dataset() -> PartDataset:
    rng = np.random.default_rng(3)
    rows = 40
    return PartDataset(
        feature_names=("press__force_kn", "oven__temperature_c"),
        features=np.column_stack([rng.uniform(10, 20, rows), rng.normal(180, 5, rows)]),
        defect=rng.integers(0, 2, rows),
        defect_station=np.array(["press"] * rows),
        part_id=np.arange(rows),
        left_at_ms=BASE_MS + np.arange(rows) * 60_000,
    )


def test_csv_round_trip(tmp_path: Path) -> None:
    dataset = _small_dataset()
    dataset.features[3, 1] = np.nan  # a missing value stays missing
    path = tmp_path / "parts.csv"
    dataset.to_csv(path)
    back = from_csv(path, dataset.csv_schema())
    assert back.columns == dataset.columns
    np.testing.assert_array_equal(back.features, dataset.features)
    np.testing.assert_array_equal(back.defect, dataset.defect)
    np.testing.assert_array_equal(back.left_at_ms, dataset.left_at_ms)
    np.testing.assert_array_equal(back.defect_station, dataset.defect_station)


def test_align_gives_a_dataset_the_columns_a_model_was_trained_on() -> None:
    dataset = _small_dataset()
    aligned = dataset.align(["oven__temperature_c", "paint__thickness_um"])
    assert aligned.feature_names == ("oven__temperature_c", "paint__thickness_um")
    np.testing.assert_array_equal(aligned.features[:, 0], dataset.column("oven__temperature_c"))
    assert np.isnan(aligned.features[:, 1]).all()
    np.testing.assert_array_equal(aligned.defect, dataset.defect)


def _write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.write_text("\n".join(",".join(row) for row in [header, *rows]) + "\n")
    return path


SCHEMA = {"left_at_ms": "int", "defect": "int", "press__force_kn": "float", "oven__zone": "int"}


def test_csv_with_missing_columns_names_them(tmp_path: Path) -> None:
    path = _write(tmp_path / "parts.csv", ["left_at_ms", "press__force_kn"], [["1", "2.5"]])
    with pytest.raises(DatasetError, match="missing columns") as raised:
        from_csv(path, SCHEMA)  # type: ignore[arg-type]
    assert "defect" in str(raised.value)
    assert "oven__zone" in str(raised.value)
    assert "press__force_kn" not in str(raised.value)


def test_csv_with_mistyped_columns_names_them(tmp_path: Path) -> None:
    header = ["left_at_ms", "defect", "press__force_kn", "oven__zone"]
    rows = [["1", "0", "2.5", "3"], ["2", "1", "heavy", "3.5"], ["3", "2", "1", "4"]]
    path = _write(tmp_path / "parts.csv", header, rows)
    with pytest.raises(DatasetError, match="mistyped columns") as raised:
        from_csv(path, SCHEMA)  # type: ignore[arg-type]
    message = str(raised.value)
    assert "press__force_kn" in message
    assert "'heavy'" in message
    assert "oven__zone" in message
    assert "'3.5'" in message
    assert "defect (line 4: '2' is not 0 or 1)" in message
    assert "left_at_ms" not in message


@pytest.mark.parametrize(
    ("schema", "named"),
    [
        ({"defect": "int", "press__force_kn": "float"}, "left_at_ms"),
        ({"left_at_ms": "int", "defect": "float"}, "defect"),
        ({"left_at_ms": "int", "defect": "int", "force": "float"}, "force"),
        ({"left_at_ms": "int", "defect": "int", "press__op": "str"}, "press__op"),
    ],
)
def test_a_schema_that_breaks_the_format_is_refused(
    tmp_path: Path, schema: dict[str, str], named: str
) -> None:
    path = _write(tmp_path / "parts.csv", ["left_at_ms", "defect"], [["1", "0"]])
    with pytest.raises(DatasetError, match=named):
        from_csv(path, schema)  # type: ignore[arg-type]
