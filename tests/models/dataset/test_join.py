"""join_rows on a hand-made line of two stations: each rule of ``models.dataset.join``'s
docstring, with the expected rows worked out by hand from the visits."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.dataset.join import Visit, join_rows
from models.dataset.rows import DatasetError, PartDataset

STATIONS = ["cut", "mill"]


def visit(
    time_ms: int,
    station: str,
    part: int,
    outcome: str = "good",
    seconds: float = 1.0,
    *,
    q: float,
    speed: float | None = None,
) -> Visit:
    process = {} if speed is None else {"speed": speed}
    return Visit(time_ms, station, part, outcome, seconds, process, defect_probability=q)


VISITS = [
    visit(500, "mill", 9, seconds=9.0, q=0.5),  # its start lies before what was read
    # A: through both stations.
    visit(1000, "cut", 1, seconds=1.0, q=0.1, speed=1.0),
    visit(2000, "mill", 1, seconds=2.0, q=0.01),
    # B: scrapped at cut; it never reached mill.
    visit(3000, "cut", 2, "scrap", seconds=1.5, q=0.2, speed=2.0),
    # C: sent back from cut for rework, then through both.
    visit(4000, "cut", 3, "rework", seconds=1.2, q=0.3, speed=3.0),
    visit(5000, "cut", 3, seconds=1.3, q=0.15, speed=3.5),
    visit(6000, "mill", 3, seconds=2.2, q=0.02),
    # D: still in the line at the end.
    visit(7000, "cut", 4, q=0.1, speed=1.0),
    # The line restarted: id 1 again is another part.
    visit(8000, "cut", 1, seconds=1.1, q=0.05, speed=1.5),
    visit(9000, "mill", 1, seconds=2.1, q=0.03),
]
# The mill's temperature, and its machine: running, then blocked from 1850 until
# A's point at 2000, running again at 5000, blocked at 5950, running from 8000.
TELEMETRY = {
    ("mill", "temperature_c"): (
        np.array([1500, 1800, 1900, 5500, 5900, 8500, 8800], dtype=np.int64),
        np.array([10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0]),
    )
}
STATES = {
    ("mill", "0"): (
        np.array([1000, 1850, 5000, 5950, 8000], dtype=np.int64),
        np.array([True, False, True, False, True]),
    )
}


def join(start_ms: int = 0, end_ms: int = 10_000) -> PartDataset:
    return join_rows(
        VISITS,
        TELEMETRY,
        STATES,
        STATIONS,
        start_ms=start_ms,
        end_ms=end_ms,
        sensor_window_s=1.0,
        noise_sd={},
    )


def column(rows: PartDataset, name: str) -> list[float]:
    return [float(value) for value in rows.features[:, rows.feature_names.index(name)]]


def test_parts_are_joined_by_id_in_time_order_and_a_restart_makes_a_new_part() -> None:
    rows = join()
    # A, B, C and the second part 1 left; D is still in the line; part 9's start was
    # never read. Rows come in the order the parts left.
    assert rows.part_id.tolist() == [1, 2, 3, 1]
    assert rows.left_at_ms.tolist() == [2000, 3000, 6000, 9000]
    assert rows.defect.tolist() == [0, 1, 1, 0]
    assert rows.defect_station.tolist() == ["", "cut", "cut", ""]
    assert rows.feature_names == (
        "cut__speed",
        "cut__processing_time_s",
        "mill__processing_time_s",
        "mill__temperature_c_mean",
    )


def test_a_reworked_part_is_described_by_its_first_pass() -> None:
    rows = join()
    assert column(rows, "cut__speed") == [1.0, 2.0, 3.0, 1.5]
    assert column(rows, "cut__processing_time_s") == [1.0, 1.5, 1.2, 1.1]


def test_a_station_never_reached_carries_the_part_just_ahead() -> None:
    # B was scrapped at cut: its mill columns are A's, the last part that passed cut
    # before it (C's first pass at cut was a rework, so C is no stand-in).
    rows = join()
    assert column(rows, "mill__processing_time_s") == [2.0, 2.0, 2.2, 2.1]
    mill_temperature = column(rows, "mill__temperature_c_mean")
    assert mill_temperature[1] == mill_temperature[0]


def test_sensor_windows_end_where_processing_ended() -> None:
    # A's point came at 2000, but the mill stopped running at 1850 (blocked): its
    # window is (850, 1850], the samples at 1500 and 1800. C's ends at 5950: the
    # samples at 5500 and 5900. The last part's machine was running at its point.
    rows = join()
    assert column(rows, "mill__temperature_c_mean") == pytest.approx(
        [(10 + 20) / 2, (10 + 20) / 2, (40 + 50) / 2, (60 + 70) / 2]
    )


def test_only_parts_that_left_within_the_span_give_rows() -> None:
    rows = join(start_ms=2500, end_ms=9000)
    assert rows.part_id.tolist() == [2, 3]
    assert rows.left_at_ms.tolist() == [3000, 6000]


def test_the_oracle_is_the_chance_that_some_station_fails_the_part() -> None:
    rows = join()
    assert rows.oracle_probability is not None
    expected = [
        1 - (1 - 0.1) * (1 - 0.01),
        1 - (1 - 0.2) * (1 - 0.01),  # mill: A's visit, the stand-in
        1 - (1 - 0.3) * (1 - 0.02),  # cut: the first pass, the rework
        1 - (1 - 0.05) * (1 - 0.03),
    ]
    assert rows.oracle_probability.tolist() == pytest.approx(expected)
    # Without noise_sd no oracle is asked for.
    plain = join_rows(
        VISITS, TELEMETRY, STATES, STATIONS, start_ms=0, end_ms=10_000, sensor_window_s=1.0
    )
    assert plain.oracle_probability is None
    assert not any(math.isnan(value) for value in column(plain, "mill__processing_time_s"))


def test_a_join_without_stations_is_refused_in_words() -> None:
    # No station order (a history with no part points): nothing to join the visits by.
    with pytest.raises(DatasetError, match="no stations"):
        join_rows(VISITS, TELEMETRY, STATES, [], start_ms=0, end_ms=10_000, sensor_window_s=1.0)
