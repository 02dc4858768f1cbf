"""The watermark rule (twin.watermark) and the pacer (twin.live), without a broker.

The watermark: a stream moves it only as far as just before its newest message; a
heartbeat moves a stream it covers (its count received) up to the heartbeat's
time, however quiet that stream is since; a stream not covered holds it back.
The pacer: it cuts at its bound, holds in the band, rises below it, and never
above the speed asked.
"""

from __future__ import annotations

import math

from twin.live import MIN_SPEED, Pacer
from twin.watermark import Watermark


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


def test_the_pacer_cuts_at_its_bound_holds_in_the_band_and_rises_below_it() -> None:
    pacer = Pacer()
    assert pacer.next_speed(1000, 1000, 0.5, 0.5, now=0.0) == 1000  # in the band: hold
    cut = pacer.next_speed(1000, 1000, 1.2, 0.5, now=1.0)
    assert cut < 1000
    # Right after a cut, the same pressure does not cut again, and nothing rises.
    assert pacer.next_speed(1000, cut, 1.2, 1.2, now=1.2) == cut
    assert pacer.next_speed(1000, cut, 0.1, 1.2, now=1.4) == cut
    risen = pacer.next_speed(1000, cut, 0.1, 0.1, now=3.0)
    assert cut < risen <= 1000
    assert pacer.next_speed(1000, 999, 0.0, 0.0, now=9.0) == 1000  # never above asked
    assert pacer.next_speed(1000, MIN_SPEED, 50.0, 0.0, now=20.0) == MIN_SPEED
