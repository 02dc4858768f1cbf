"""A snapshot of the line as the twin sees it: the initial state of a what-if fork.

The snapshot is built from the twin's view (``TwinState.view()``, that is from
MQTT messages only) and the line configuration, never from a running plant's
memory: a real line publishing the same topics gives the same kind of snapshot.
It holds the twin's clock and the line's calendar (so that the fork runs at the
line's time of day), each station's state, input buffer level, parts in
process, setpoints and estimated tool wear, the machines' states, and the line's
counters at that moment, so that a forecast made from it can later be compared
with what the line then did.

Where the view does not know a value, the snapshot takes a documented default
and says so in ``notes`` (docs/whatif.md):

- an input buffer level no event has reported yet counts as 0; the first
  station's buffer is not in the view, so it starts empty too (a conwip fork
  tops it up to ``wip_cap``);
- a station that has finished no part yet has its default setpoints and wear 0;
- wear is the estimate for now: the wear the latest finished part was made
  with plus that part's own increment (``per_part * speed^speed_exponent``),
  or 0 when that reached the preventive threshold and the station has worked
  since, because maintenance comes before the next part.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from twin.config.line import LineConfig, Station
from twin.contract import CalendarDescription, StationStateName
from twin.state.views import ClockView, LineView, StationView

SimTime = float
StationId = str

# States in which a machine holds a part (taken, not yet handed on).
HOLDING_STATES: frozenset[str] = frozenset({"running", "setup", "blocked"})
# States in which a due maintenance may still be pending (it comes before the next part).
MAINTENANCE_PENDING_STATES: frozenset[str | None] = frozenset(
    {"maintenance", "planned_downtime", "stopped", None}
)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MachineSnapshot(_Frozen):
    index: int
    state: StationStateName | None = Field(description="Null: no state reported yet.")
    state_since_s: SimTime | None


class StationSnapshot(_Frozen):
    id: StationId
    position: int
    state: StationStateName | None = Field(description="Headline state; null: unknown.")
    state_since_s: SimTime | None
    input_buffer_level: int = Field(ge=0, description="Parts waiting; unknown counts as 0.")
    parts_in_process: int = Field(ge=0, description="Parts taken by a machine, not handed on.")
    setpoints: dict[str, float] = Field(description="speed, temperature_c ... now.")
    process: dict[str, float] = Field(
        description="The process values the latest finished part reported (raw, as seen)."
    )
    wear: float = Field(ge=0, description="Estimated tool wear now (see the module docs).")
    maintenance_due: bool = Field(description="Wear reached preventive_at, not yet maintained.")
    machines: list[MachineSnapshot]
    started: int
    good: int
    scrap: int
    rework: int


class LineCounters(_Frozen):
    """The line's counters as the twin knows them at the fork."""

    released: int = Field(description="Parts the first station has started (new ones).")
    shipped: int = Field(description="Good parts that left the last station.")
    good: int = Field(description="Same as shipped: good parts out of the line.")
    scrap: int
    rework: int
    work_in_process: int


class LineSnapshot(_Frozen):
    line: str
    config_hash: str = Field(description="The line config the snapshot was read against.")
    sim_time_s: SimTime = Field(description="The twin's clock: the latest sim time seen.")
    calendar: CalendarDescription | None = Field(
        default=None,
        description="The shift calendar the line announced; with sim_time_s it fixes the "
        "fork's time of day. Null: the line announced none (the config's is used).",
    )
    clock: ClockView | None = Field(
        default=None, description="The line's time of day, shift and planned stop at the fork."
    )
    counters: LineCounters
    stations: list[StationSnapshot]
    notes: list[str] = Field(default=[], description="Values the view lacked: defaults used.")

    def station(self, station_id: StationId) -> StationSnapshot:
        for station in self.stations:
            if station.id == station_id:
                return station
        raise KeyError(station_id)


def _setpoints(spec: Station, process: dict[str, float]) -> dict[str, float]:
    setpoints = {"speed": process.get("speed", spec.process.speed.default)}
    temperature = spec.process.temperature_c
    if temperature is not None:
        setpoints["temperature_c"] = process.get("temperature_c", temperature.default)
    return setpoints


def _wear_now(
    spec: Station, process: dict[str, float], state: StationStateName | None
) -> tuple[float, bool]:
    """(estimated wear now, maintenance due) from the latest finished part's values."""
    seen = process.get("wear")
    model = spec.process.wear
    if seen is None or model is None:
        return max(0.0, seen or 0.0), False
    speed = process.get("speed", spec.process.speed.default)
    after = max(0.0, seen) + model.per_part * speed**model.speed_exponent
    if model.preventive_at is not None and after >= model.preventive_at:
        if state in MAINTENANCE_PENDING_STATES:
            return after, True
        return 0.0, False  # it has worked since, so the maintenance is done
    return after, False


def _parts_in_process(spec: Station, seen: StationView) -> int:
    if spec.machines == 1:
        return 0 if seen.current_part is None else 1
    # The twin tracks one current part per station; count the machines that hold one.
    holding = set(HOLDING_STATES)
    if spec.failures is not None and spec.failures.basis == "operation":
        holding.add("down")  # operation failures strike only while processing
    return min(spec.machines, sum(1 for machine in seen.machines if machine.state in holding))


def snapshot_from_view(view: LineView, config: LineConfig) -> LineSnapshot:
    """The fork's initial state from the twin's view; ValueError names what is missing."""
    if view.sim_time_s is None:
        raise ValueError("sim_time_s: the twin has no data yet (no message has arrived)")
    if view.line != config.line.id:
        raise ValueError(
            f"line: the view is of line {view.line!r}, the config of {config.line.id!r}"
        )
    seen_by_id = {station.id: station for station in view.stations}
    unknown = sorted(set(seen_by_id) - {spec.id for spec in config.stations})
    if unknown:
        raise ValueError(f"stations: the twin reports stations not in the config: {unknown}")
    notes: list[str] = []
    stations: list[StationSnapshot] = []
    for position, spec in enumerate(config.stations):
        seen = seen_by_id.get(spec.id)
        if seen is None:
            raise ValueError(f"stations[{position}] ({spec.id}): the twin has no data on it yet")
        level = None if seen.input_buffer is None else seen.input_buffer.level
        if level is None:
            if position > 0 or config.release.policy == "open":
                notes.append(f"{spec.id}.input_buffer_level unknown: 0 assumed")
            level = 0
        if not seen.process:
            notes.append(f"{spec.id}: no part finished yet: default setpoints, wear 0")
        if seen.state is None:
            notes.append(f"{spec.id}.state unknown: taken as up")
        wear, due = _wear_now(spec, seen.process, seen.state)
        stations.append(
            StationSnapshot(
                id=spec.id,
                position=position,
                state=seen.state,
                state_since_s=seen.state_since_s,
                input_buffer_level=max(0, level),
                parts_in_process=_parts_in_process(spec, seen),
                setpoints=_setpoints(spec, seen.process),
                process=dict(seen.process),
                wear=wear,
                maintenance_due=due,
                machines=[
                    MachineSnapshot(
                        index=machine.index,
                        state=machine.state,
                        state_since_s=machine.state_since_s,
                    )
                    for machine in seen.machines
                ],
                started=seen.started,
                good=seen.good,
                scrap=seen.scrap,
                rework=seen.rework,
            )
        )
    if view.calendar is None and config.calendar is not None:
        notes.append(
            "calendar: the line announced none: the config's, with sim time 0 at its start_at_h"
        )
    kpis = view.kpis
    return LineSnapshot(
        line=config.line.id,
        config_hash=config.config_hash(),
        sim_time_s=view.sim_time_s,
        calendar=view.calendar,
        clock=view.clock,
        counters=LineCounters(
            # The view's WIP is released - shipped - scrapped.
            released=kpis.work_in_process + kpis.good + kpis.scrap,
            shipped=kpis.good,
            good=kpis.good,
            scrap=kpis.scrap,
            rework=kpis.rework,
            work_in_process=kpis.work_in_process,
        ),
        stations=stations,
        notes=notes,
    )
