"""The line's messages again, from the history store: what ``factory-twin learn
--from-history`` feeds a ``LineLearner`` with.

History keeps, per station, each finished part (its result, processing time,
process values and the line's clock, ``sim_time_s``) and each machine's state
changes (the new state and the line's clock). ``replay`` turns them back into
the contract's messages, run by run (the backfill's week, then each
``factory-twin up``: each restarts the line's clock; a run is told from the
next by each series' clock going back, so a run in which a station sent
nothing is merged into the next), each run in the line's
time order: a ``part_finished`` per part and a ``state_changed`` per change,
whose ``from_state`` is the machine's previous state in the run. What history
does not keep is lost: the product (parts are pooled per station), the machine a
part was made on (machine 0), part starts (so no microstops), the reasons of
state changes. Points written before history carried the line's clock are
skipped and counted: their wall times, at the line's speed, are not line time.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from twin.contract import (
    SCHEMA_VERSION,
    STATION_STATES,
    PartFinished,
    PartResult,
    StateChanged,
    StationStateName,
)
from twin.history.points import HistoryStore

SOURCE = "history"
# Backfill before live; a line's clock going back by more than this starts a run.
_ORIGINS = {"backfill": 0, "live": 1}
RESTART_S = 1.0


@dataclass
class Replayed:
    """What ``replay`` read: messages made, and points it had to skip."""

    parts: int = 0
    states: int = 0
    without_clock: int = 0


def _fields(
    store: HistoryStore, measurement: str, start_ms: int, end_ms: int, line: str | None
) -> dict[tuple[str, str, str, int], dict[str, float]]:
    """Each point's fields, keyed by (origin, station, machine tag, time)."""
    tags = {"line": line} if line is not None else None
    names = sorted(
        {
            key.field
            for key in store.series(measurement)
            if line is None or key.tags.get("line") == line
        }
    )
    points: dict[tuple[str, str, str, int], dict[str, float]] = {}
    for name in names:
        for origin in ("backfill", "live"):
            wanted = {**(tags or {}), "origin": origin}
            for result in store.query(measurement, name, start_ms, end_ms, tags=wanted):
                station = result.key.tags.get("station", "")
                machine = result.key.tags.get("machine", "0")
                for window in result.windows:
                    key = (origin, station, machine, window.start_ms)
                    points.setdefault(key, {})[name] = window.value
    return points


Item = tuple[str, BaseModel]


def replay(
    store: HistoryStore,
    start_ms: int,
    end_ms: int,
    *,
    line: str | None = None,
    counted: Replayed | None = None,
) -> list[list[Item]]:
    """The runs of the line history holds in [start_ms, end_ms), oldest first,
    each its (station, message) pairs in the line's time order (module doc). A
    run ends where the line's clock goes back: the backfill's simulated week and
    each ``factory-twin up`` start their clocks at 0."""
    counted = counted if counted is not None else Replayed()
    # (origin, wall time, line time, order, station, message); order: a change
    # before a part at the same instant, as the line sends them.
    made: list[tuple[int, int, float, int, str, BaseModel]] = []
    for (origin, station, _, time_ms), fields in _fields(
        store, "part", start_ms, end_ms, line
    ).items():
        clock = fields.get("sim_time_s")
        if clock is None or "processing_time_s" not in fields:
            counted.without_clock += 1
            continue
        result: PartResult = (
            "scrap" if fields.get("scrap") else "rework" if fields.get("rework") else "good"
        )
        process = {
            name.removeprefix("process_"): value
            for name, value in fields.items()
            if name.startswith("process_")
        }
        part = PartFinished(
            schema_version=SCHEMA_VERSION,
            source=SOURCE,
            seq=0,
            ts_ms=time_ms,
            sim_time_s=clock,
            event="part_finished",
            part_id=int(fields.get("part_id", 0)),
            result=result,
            processing_time_s=fields["processing_time_s"],
            exits_line=False,
            output_buffer_level=None,
            process=process or None,
        )
        made.append((_ORIGINS[origin], time_ms, clock, 1, station, part))
        counted.parts += 1
    for (origin, station, machine, time_ms), fields in _fields(
        store, "state", start_ms, end_ms, line
    ).items():
        clock = fields.get("sim_time_s")
        code = fields.get("code")
        if clock is None or code is None or not 0 <= int(code) < len(STATION_STATES):
            counted.without_clock += 1
            continue
        change = StateChanged(
            schema_version=SCHEMA_VERSION,
            source=SOURCE,
            seq=0,
            ts_ms=time_ms,
            sim_time_s=clock,
            event="state_changed",
            machine=int(machine) if machine.isdigit() else 0,
            from_state=None,  # set below, in the line's order
            to_state=STATION_STATES[int(code)],
            reason=SOURCE,
        )
        made.append((_ORIGINS[origin], time_ms, clock, 0, station, change))
        counted.states += 1
    # A run ends where the line's clock goes back. Each series (a station's parts,
    # a machine's states) is in wall-time order in the store, so its own drops
    # number its runs; a point's run is its series' count of drops before it.
    made.sort(key=lambda item: (item[0], item[1]))
    top: dict[tuple[int, str, int, int], float] = {}
    index: dict[tuple[int, str, int, int], int] = {}
    by_run: dict[tuple[int, int], list[tuple[int, int, float, int, str, BaseModel]]] = {}
    for item in made:
        rank, clock, order, station = item[0], item[2], item[3], item[4]
        series = (rank, station, order, getattr(item[5], "machine", 0))
        highest = top.get(series, clock)
        if clock < highest - RESTART_S:
            index[series] = index.get(series, 0) + 1
            highest = clock
        top[series] = max(highest, clock)
        by_run.setdefault((rank, index.get(series, 0)), []).append(item)
    runs = [by_run[key] for key in sorted(by_run)]
    replayed: list[list[Item]] = []
    for run in runs:
        run.sort(key=lambda item: (item[2], item[3]))
        last: dict[tuple[str, int], StationStateName] = {}
        pairs: list[Item] = []
        for *_, station, message in run:
            if isinstance(message, StateChanged):
                key = (station, message.machine)
                message = message.model_copy(update={"from_state": last.get(key)})
                last[key] = message.to_state
            pairs.append((station, message))
        replayed.append(pairs)
    return replayed


def last_hours(runs: list[list[Item]], hours: float) -> list[list[Item]]:
    """The latest ``hours`` of line time of ``runs``: whole runs from the newest
    back, and the part of the oldest one used that falls inside."""
    left = hours * 3600.0
    kept: list[list[Item]] = []
    for run in reversed(runs):
        if left <= 0 or not run:
            break
        end = _clock(run[-1][1])
        start = end - left
        kept.insert(0, [pair for pair in run if _clock(pair[1]) >= start])
        left -= end - _clock(run[0][1])
    return kept


def _clock(message: BaseModel) -> float:
    clock: float = getattr(message, "sim_time_s", 0.0)
    return clock


__all__ = ["RESTART_S", "Item", "Replayed", "last_hours", "replay"]
