"""The ISA-18.2 alarm-system figures on a crafted hour of alarms, whose answers are
counted by hand below: a chattering alarm, a flood in one 10-minute interval, a
stale alarm, a shelf that hides nothing from the counts, and the bad actors."""

from __future__ import annotations

import pytest

from twin.alarms.kpis import REFERENCES, alarm_kpis
from twin.alarms.lifecycle import AlarmBook, AlarmKey, Transition

CHATTY = AlarmKey("spike", "welding", "power_kw")
STALE = AlarmKey("stuck", "cutting", "vibration_mm_s")
CLEARED = AlarmKey("dropout", "painting", "temperature_c")


def _hour() -> list[Transition]:
    book = AlarmBook()
    records: list[Transition] = []
    # Raised 26 h before the window's end (the window is line time 0 to 3600 s) and
    # never cleared: stale. One raised as long ago but cleared since is not.
    records += book.condition(STALE, True, -90_000.0)
    records += book.condition(CLEARED, True, -90_000.0)
    records += book.condition(CLEARED, False, -1_000.0)
    # Chattering: raised 4 times between 100 s and 145 s (each cleared in between),
    # then once more at 400 s, out of that minute.
    for at_s in (100.0, 115.0, 130.0, 145.0, 400.0):
        records += book.condition(CHATTY, True, at_s)
        records += book.condition(CHATTY, False, at_s + 5)
    # A flood: 12 alarms after 1200 s and by 1800 s (the third interval).
    for number in range(12):
        key = AlarmKey("offset", f"s{number:02d}", "temperature_c")
        records += book.condition(key, True, 1201.0 + 40 * number)
    # 10 more in the fifth interval: not more than 10, so no flood.
    for number in range(10):
        key = AlarmKey("offset", f"t{number:02d}", "temperature_c")
        records += book.condition(key, True, 2400.0 + 50 * number)
    # Shelved and back while still active: annunciated again at 3000 s.
    records += book.shelve("offset:t00:temperature_c", 2950.0, 50.0, "checking", "anna")
    records += book.tick(3000.0)
    # At the window's end: counted; after it: not.
    records += book.condition(AlarmKey("offset", "end", "temperature_c"), True, 3600.0)
    records += book.condition(AlarmKey("offset", "late", "temperature_c"), True, 3600.5)
    return records


def test_the_figures_of_a_crafted_hour() -> None:
    kpis = alarm_kpis(_hour(), 0.0, 3600.0)
    # 5 (chatty) + 12 (flood) + 10 + 1 (back from the shelf) + 1 at the very end;
    # the stale alarm was raised before the window and the late one after it.
    assert kpis.annunciated == 29
    assert kpis.per_hour == pytest.approx(29.0)
    assert kpis.intervals == 6
    assert kpis.flood_intervals == 1
    assert kpis.flood_share == pytest.approx(1 / 6)
    assert kpis.peak_per_interval == 12
    assert [(c.alarm_id, c.most_in_a_minute, c.first_s) for c in kpis.chattering] == [
        (CHATTY.id, 4, 100.0)
    ]
    assert [(s.alarm_id, s.active_since_s) for s in kpis.stale] == [(STALE.id, -90_000.0)]
    assert kpis.stale[0].hours == pytest.approx(26.0)
    top = kpis.bad_actors
    assert len(top) == 10
    assert (top[0].alarm_id, top[0].count) == (CHATTY.id, 5)
    assert top[0].share == pytest.approx(5 / 29)
    assert (top[1].alarm_id, top[1].count) == ("offset:t00:temperature_c", 2)
    # The rest once each, by id.
    assert [a.alarm_id for a in top[2:]] == [
        "offset:end:temperature_c",
        *(f"offset:s{n:02d}:temperature_c" for n in range(7)),
    ]


def test_a_window_sees_only_its_own_alarms() -> None:
    records = _hour()
    early = alarm_kpis(records, 0.0, 600.0)
    assert early.annunciated == 5
    assert early.intervals == 1
    assert early.flood_intervals == 0
    # Stale is as of the window's end: 25 h 10 min active by then.
    assert early.stale[0].hours == pytest.approx((600.0 + 90_000.0) / 3600.0)
    before = alarm_kpis(records, -90_001.0, -80_000.0)
    assert before.stale == []  # only 10,000 s active by then
    assert before.annunciated == 2


def test_an_empty_or_backward_window() -> None:
    empty = alarm_kpis([], 0.0, 0.0)
    assert empty.per_hour is None
    assert empty.flood_share is None
    assert empty.annunciated == 0
    assert empty.bad_actors == []
    with pytest.raises(ValueError, match="before"):
        alarm_kpis([], 10.0, 0.0)
    assert REFERENCES["alarms_per_hour_acceptable"] < REFERENCES["alarms_per_hour_manageable"]
