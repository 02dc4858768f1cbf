"""A sensor's trace: readings and expectations binned on the line's clock, bounded."""

from __future__ import annotations

import pytest

from models.anomaly.trace import SensorTrace


def test_readings_and_what_they_were_judged_against_are_binned() -> None:
    trace = SensorTrace(bin_s=60.0, keep=10)
    for at_s, value, expected in [(0.0, 1.0, 1.5), (30.0, 3.0, 2.5), (61.0, 7.0, None)]:
        trace.read(at_s, value)
        if expected is not None:
            trace.expect(at_s, expected, 0.5)
    first, second = trace.points()
    assert (first.start_s, first.readings, first.reading) == (0.0, 2, 2.0)
    assert (first.lowest, first.highest, first.expected, first.spread) == (1.0, 3.0, 2.0, 0.5)
    # A minute with no reading judged has readings and no expectation.
    assert (second.start_s, second.reading, second.expected, second.spread) == (
        60.0,
        7.0,
        None,
        None,
    )
    assert [p.start_s for p in trace.points(60.0, 1e9)] == [60.0]
    assert [p.start_s for p in trace.points(-1e9, 59.9)] == [0.0]


def test_a_late_reading_joins_its_bin_and_one_too_old_is_dropped() -> None:
    trace = SensorTrace(bin_s=10.0, keep=3)
    for at_s in (0.0, 10.0, 20.0, 30.0):
        trace.read(at_s, at_s)
    # Three bins are kept: 0 s went.
    assert [p.start_s for p in trace.points()] == [10.0, 20.0, 30.0]
    trace.read(15.0, 5.0)
    trace.read(5.0, 1e6)
    points = trace.points()
    assert [p.start_s for p in points] == [10.0, 20.0, 30.0]
    assert (points[0].readings, points[0].reading) == (2, 7.5)
    assert max(p.highest for p in points) == 30.0


@pytest.mark.parametrize(("bin_s", "keep"), [(0.0, 5), (-1.0, 5), (10.0, 0)])
def test_its_bins_must_be_of_some_length_and_some_kept(bin_s: float, keep: int) -> None:
    with pytest.raises(ValueError, match="bin_s"):
        SensorTrace(bin_s=bin_s, keep=keep)
