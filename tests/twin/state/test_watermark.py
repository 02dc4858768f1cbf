"""The watermark rule (twin.state.watermark), without a broker (the pacer: test_pacing).

The watermark: a stream moves it only as far as just before its newest message; a
heartbeat moves a stream it covers (its count received) up to the heartbeat's
time, however quiet that stream is since; a stream not covered holds it back.
"""

from __future__ import annotations

import math

from twin.state.watermark import Watermark


def test_a_quiet_stream_moves_on_with_the_heartbeats_that_cover_it() -> None:
    mark = Watermark()
    mark.saw("a", "event", 0, 10.0)
    mark.saw("b", "event", 0, 12.0)
    mark.saw("b", "event", 1, 50.0)
    # Station a (down, say) sends nothing more; the line says it sent one event there.
    mark.heartbeat(60.0, {"a": 1, "b": 2}, {})
    assert mark.update() == 60.0  # both streams are complete up to the heartbeat
    assert mark.lag_s() == 0.0
    assert mark.lag_messages() == 0


def test_a_stream_not_covered_holds_the_watermark_before_its_newest_message() -> None:
    mark = Watermark()
    mark.saw("a", "event", 0, 10.0)
    mark.saw("b", "event", 0, 40.0)
    mark.heartbeat(60.0, {"a": 3, "b": 1}, {})  # two events of a are on their way
    value = mark.update()
    assert value == math.nextafter(10.0, -math.inf)
    assert mark.lag_messages() == 2
    assert mark.lag_s() == 60.0 - value
    mark.saw("a", "event", 1, 20.0)
    mark.saw("a", "event", 2, 55.0)
    assert mark.update() == 60.0
    # It never goes back, whatever comes late.
    mark.saw("a", "event", 2, 5.0)
    assert mark.update() == 60.0


def test_without_heartbeats_the_newest_message_is_the_watermark() -> None:
    mark = Watermark()
    mark.saw("a", "telemetry", 0, 30.0)
    mark.saw("a", "event", 0, 10.0)
    assert mark.update() == 30.0
    assert mark.lag_s() is None
    assert mark.lag_messages() is None
