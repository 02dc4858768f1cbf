"""The ISA-18.2 alarm lifecycle: every transition of the state diagram, the
operator's actions refused where they make no sense, a shelf that expires, and a
book rebuilt from its records equal to the one that made them."""

from __future__ import annotations

import pytest

from twin.alarms.lifecycle import (
    MAX_SHELF_S,
    AlarmBook,
    AlarmError,
    AlarmKey,
    State,
    Transition,
)

KEY = AlarmKey("offset", "machining", "temperature_c")
OTHER = AlarmKey("lag")


def _state(book: AlarmBook, key: AlarmKey = KEY) -> State:
    return book.get(key.id).state


def _raise(book: AlarmBook, at_s: float, key: AlarmKey = KEY) -> list[Transition]:
    return book.condition(
        key,
        True,
        at_s,
        priority="high",
        message="reads 10.2 °C above the expected",
        evidence={"expected": 61.0, "seen": 71.2, "sigmas": 40.8},
    )


def _clear(book: AlarmBook, at_s: float, key: AlarmKey = KEY) -> list[Transition]:
    return book.condition(key, False, at_s)


def test_ids_name_the_kind_station_and_sensor_and_read_back() -> None:
    assert KEY.id == "offset:machining:temperature_c"
    assert OTHER.id == "lag:-:-"
    assert AlarmKey.parse(KEY.id) == KEY
    assert AlarmKey.parse(OTHER.id) == OTHER
    with pytest.raises(AlarmError, match="kind:station:sensor"):
        AlarmKey.parse("offset:machining")


def test_raise_acknowledge_clear_the_usual_way_round() -> None:
    """A -> B (raised) -> C (acknowledged) -> A (cleared)."""
    book = AlarmBook()
    assert _clear(book, 5.0) == []  # never raised: nothing to record
    (raised,) = _raise(book, 10.0)
    assert (raised.event, raised.before, raised.after) == ("raise", "normal", "unacknowledged")
    assert raised.annunciated
    assert raised.occurrence == 1
    assert raised.evidence == {"expected": 61.0, "seen": 71.2, "sigmas": 40.8}
    assert _raise(book, 11.0) == []  # still active: no new transition
    (acked,) = book.acknowledge(KEY.id, 20.0, "anna", note="seen, tech called")
    assert (acked.before, acked.after, acked.by, acked.reason) == (
        "unacknowledged",
        "acknowledged",
        "anna",
        "seen, tech called",
    )
    assert not acked.annunciated
    (cleared,) = _clear(book, 30.0)
    assert (cleared.before, cleared.after) == ("acknowledged", "normal")
    assert book.listed() == []
    assert [t.event for t in book.get(KEY.id).history] == ["raise", "acknowledge", "clear"]


def test_an_alarm_that_clears_unacknowledged_waits_for_its_acknowledgement() -> None:
    """B -> D (returned unacknowledged) -> A (acknowledged); and D -> B when it
    comes back before anyone looked: a new occurrence."""
    book = AlarmBook()
    _raise(book, 10.0)
    (cleared,) = _clear(book, 15.0)
    assert (cleared.before, cleared.after) == ("unacknowledged", "returned_unacknowledged")
    assert [a.id for a in book.listed()] == [KEY.id]  # still on the list
    (back,) = _raise(book, 18.0)
    assert (back.before, back.after, back.occurrence) == (
        "returned_unacknowledged",
        "unacknowledged",
        2,
    )
    assert back.annunciated
    _clear(book, 19.0)
    (acked,) = book.acknowledge(KEY.id, 25.0, "anna")
    assert (acked.before, acked.after) == ("returned_unacknowledged", "normal")


def test_acknowledging_what_needs_none_is_refused() -> None:
    book = AlarmBook()
    with pytest.raises(AlarmError) as unknown:
        book.acknowledge("offset:welding:-", 1.0, "anna")
    assert unknown.value.kind == "unknown"
    _raise(book, 10.0)
    book.acknowledge(KEY.id, 11.0, "anna")
    with pytest.raises(AlarmError) as twice:
        book.acknowledge(KEY.id, 12.0, "ben")
    assert twice.value.kind == "conflict"
    assert "acknowledged" in twice.value.detail


def test_a_shelf_takes_the_alarm_off_the_list_until_it_expires() -> None:
    """B -> E (shelved, with a reason, for a time); still active when the shelf
    expires: B again, a new occurrence to acknowledge."""
    book = AlarmBook()
    _raise(book, 100.0)
    (shelved,) = book.shelve(KEY.id, 110.0, 600.0, "sensor being recalibrated", "anna")
    assert (shelved.before, shelved.after) == ("unacknowledged", "shelved")
    assert shelved.shelved_until_s == 710.0
    assert shelved.reason == "sensor being recalibrated"
    assert book.tick(709.0) == []
    (expired,) = book.tick(710.0)
    assert (expired.event, expired.before, expired.after) == (
        "shelf_expired",
        "shelved",
        "unacknowledged",
    )
    assert expired.annunciated
    assert expired.occurrence == 2
    assert expired.by is None


def test_an_alarm_that_clears_on_the_shelf_comes_back_normal() -> None:
    book = AlarmBook()
    _raise(book, 100.0)
    book.acknowledge(KEY.id, 101.0, "anna")
    book.shelve(KEY.id, 110.0, 600.0, "known fault, parts ordered", "anna")
    (cleared,) = _clear(book, 200.0)
    assert (cleared.before, cleared.after) == ("shelved", "shelved")
    (back,) = book.unshelve(KEY.id, 300.0, "ben")
    assert (back.before, back.after, back.by) == ("shelved", "normal", "ben")
    assert not back.annunciated
    # Raised and cleared again on a shelf: nothing owed either.
    _raise(book, 400.0)
    book.shelve(KEY.id, 401.0, 60.0, "again", "ben")
    _raise(book, 402.0)  # still active: no transition
    _clear(book, 403.0)
    assert book.tick(500.0)[0].after == "normal"


def test_a_shelf_needs_a_reason_and_a_bounded_time_and_something_to_shelve() -> None:
    book = AlarmBook()
    _raise(book, 100.0)
    for for_s in (0.0, -5.0, MAX_SHELF_S + 1):
        with pytest.raises(AlarmError, match="for_s") as bad:
            book.shelve(KEY.id, 110.0, for_s, "why", "anna")
        assert bad.value.kind == "invalid"
    with pytest.raises(AlarmError, match="reason"):
        book.shelve(KEY.id, 110.0, 60.0, "  ", "anna")
    with pytest.raises(AlarmError, match="reason"):
        book.shelve(KEY.id, 110.0, 60.0, "x" * 201, "anna")
    book.acknowledge(KEY.id, 111.0, "anna")
    _clear(book, 112.0)
    with pytest.raises(AlarmError) as normal:
        book.shelve(KEY.id, 113.0, 60.0, "why", "anna")
    assert normal.value.kind == "conflict"
    with pytest.raises(AlarmError, match="not shelved"):
        book.unshelve(KEY.id, 114.0, "anna")


def test_out_of_service_until_returned_whatever_the_condition_did() -> None:
    """Any state -> G (out of service, with a reason); no expiry; back active: B."""
    book = AlarmBook()
    _raise(book, 100.0)
    book.shelve(KEY.id, 101.0, 60.0, "first a shelf", "anna")
    (removed,) = book.remove_from_service(KEY.id, 102.0, "sensor replaced this week", "anna")
    assert (removed.before, removed.after) == ("shelved", "out_of_service")
    assert book.tick(10_000.0) == []  # the shelf went with it
    _clear(book, 200.0)
    _raise(book, 300.0)
    assert _state(book) == "out_of_service"
    with pytest.raises(AlarmError, match="already"):
        book.remove_from_service(KEY.id, 301.0, "again", "anna")
    with pytest.raises(AlarmError, match="reason"):
        book.remove_from_service(KEY.id, 301.0, "", "anna")
    (back,) = book.return_to_service(KEY.id, 400.0, "ben")
    assert (back.event, back.before, back.after) == (
        "return_to_service",
        "out_of_service",
        "unacknowledged",
    )
    with pytest.raises(AlarmError, match="not out of service"):
        book.return_to_service(KEY.id, 401.0, "ben")
    # A normal alarm can be taken out of service too, and comes back normal.
    book.acknowledge(KEY.id, 402.0, "ben")
    _clear(book, 403.0)
    book.remove_from_service(KEY.id, 404.0, "line rebuilt", "ben")
    assert book.return_to_service(KEY.id, 405.0, "ben")[0].after == "normal"


def test_the_list_shows_what_is_not_normal_by_priority_then_newest() -> None:
    book = AlarmBook()
    book.condition(AlarmKey("stuck", "cutting", "vibration_mm_s"), True, 10.0, priority="low")
    book.condition(AlarmKey("lag"), True, 20.0, priority="high")
    book.condition(AlarmKey("spike", "welding", "power_kw"), True, 30.0, priority="high")
    book.condition(AlarmKey("dropout", "painting", "temperature_c"), True, 40.0, priority="low")
    book.condition(AlarmKey("dropout", "painting", "temperature_c"), False, 41.0)
    book.acknowledge("dropout:painting:temperature_c", 42.0, "anna")
    assert [a.id for a in book.listed()] == [
        "spike:welding:power_kw",
        "lag:-:-",
        "stuck:cutting:vibration_mm_s",
    ]


def test_a_book_replayed_from_its_records_is_the_book_that_made_them() -> None:
    """What a restart does: every transition read back from the store, in order."""
    book = AlarmBook()
    records: list[Transition] = []
    records += _raise(book, 10.0)
    records += book.condition(OTHER, True, 11.0, priority="critical", message="behind")
    records += book.acknowledge(KEY.id, 12.0, "anna")
    records += book.shelve(OTHER.id, 13.0, 100.0, "known", "anna")
    records += _clear(book, 14.0)
    records += _raise(book, 15.0)
    records += book.condition(OTHER, False, 16.0)
    third = AlarmKey("stuck", "cutting", "vibration_mm_s")
    records += book.condition(third, True, 17.0)
    records += book.remove_from_service(third.id, 18.0, "repair", "ben")
    records += book.condition(third, False, 19.0)
    again = AlarmBook.replay(records)

    def seen(b: AlarmBook) -> list[tuple[object, ...]]:
        return [
            (
                a.id,
                a.state,
                a.active,
                a.acknowledged,
                a.occurrence,
                a.since_s,
                a.shelved_until_s,
                a.shelf_reason,
                a.priority,
                a.message,
            )
            for a in b.alarms()
        ]

    assert seen(again) == seen(book)
    # And it goes on from there as the first would have.
    assert again.tick(113.0)[0].after == "normal"
    assert book.tick(113.0)[0].after == "normal"
    assert again.return_to_service(third.id, 120.0, "ben")[0].after == "normal"
