"""The alarms' record in the history file: what is appended reads back the same,
filtered as asked; it survives closing and opening the file again beside the
samples' store; and the book rebuilt from it after such a restart is the book
that wrote it."""

from __future__ import annotations

import math
import time
from pathlib import Path

from twin.alarms.lifecycle import AlarmBook, AlarmKey, Transition
from twin.alarms.log import AlarmLog, AlarmQuery
from twin.history.points import Point
from twin.history.store import SqliteStore

TEMPERATURE = AlarmKey("offset", "machining", "temperature_c")
POWER = AlarmKey("spike", "welding", "power_kw")


def _shift(book: AlarmBook) -> list[Transition]:
    records: list[Transition] = []
    records += book.condition(
        TEMPERATURE,
        True,
        100.0,
        priority="high",
        message="10 °C above the expected",
        evidence={"expected": 61.0, "seen": 71.0, "sigmas": math.inf},
        wall_ms=1_000,
    )
    records += book.condition(POWER, True, 200.0, priority="low", wall_ms=2_000)
    records += book.acknowledge(TEMPERATURE.id, 300.0, "anna", wall_ms=3_000)
    records += book.shelve(POWER.id, 400.0, 3600.0, "welder being serviced", "anna", wall_ms=4_000)
    records += book.condition(TEMPERATURE, False, 500.0, wall_ms=5_000)
    return records


def test_what_is_appended_reads_back_the_same_and_filtered(tmp_path: Path) -> None:
    log = AlarmLog(tmp_path / "history.sqlite3")
    records = _shift(AlarmBook())
    log.append(records[:2])
    log.append(records[2:])
    log.append([])
    read = log.read()
    # The evidence that was not finite is kept as null, not lost with its record.
    assert read[0].evidence == {"expected": 61.0, "seen": 71.0, "sigmas": None}
    assert read == records
    assert log.count() == 5
    assert [t.event for t in log.read(AlarmQuery(station="welding"))] == ["raise", "shelve"]
    assert [t.event for t in log.read(AlarmQuery(sensor="temperature_c"))] == [
        "raise",
        "acknowledge",
        "clear",
    ]
    assert [t.wall_ms for t in log.read(AlarmQuery(priority="low"))] == [2_000, 4_000]
    window = log.read(AlarmQuery(from_ms=2_000, to_ms=4_000))
    assert [t.wall_ms for t in window] == [2_000, 3_000]
    assert [t.wall_ms for t in log.read(AlarmQuery(limit=2))] == [1_000, 2_000]
    assert log.read(AlarmQuery(station="painting")) == []
    log.close()


def test_the_record_survives_a_restart_beside_the_samples_and_rebuilds_the_book(
    tmp_path: Path,
) -> None:
    path = tmp_path / "history.sqlite3"
    store = SqliteStore(path)
    log = AlarmLog(path)
    book = AlarmBook()
    log.append(_shift(book))
    # Now, not 1970: the samples' retention would take an old point away.
    store.write([Point("kpi", {"line": "line1"}, {"oee": 0.5}, int(time.time() * 1000))])
    assert store.flush(10)
    log.close()
    store.close()

    # The next start: the samples' store opens a file that has the alarms' table too.
    store = SqliteStore(path)
    log = AlarmLog(path)
    try:
        assert store.count() == 1
        again = AlarmBook.replay(log.read())
        assert [(a.id, a.state, a.occurrence, a.shelved_until_s) for a in again.alarms()] == [
            (a.id, a.state, a.occurrence, a.shelved_until_s) for a in book.alarms()
        ]
        assert again.get(POWER.id).state == "shelved"
        assert again.get(TEMPERATURE.id).state == "normal"
        # What the restarted book does next is written after what came before.
        log.append(again.tick(4000.0))
        assert [t.event for t in log.read()][-1] == "shelf_expired"
    finally:
        log.close()
        store.close()
