"""Hand-made tallies for the economics tests: what the twin counted, written out.

``station_tally`` and ``line_tally`` build the tallies ``twin.state.tallies``
defines, with defaults for what a test does not care about; ``stop_times`` gives
every stop state, zero unless named; ``grown`` scales a station's tally.
"""

from __future__ import annotations

from twin.contract import StationStateName
from twin.state.tallies import STOP_STATES, LineTally, StationTally


def stop_times(**seconds: float) -> dict[StationStateName, float]:
    found: dict[StationStateName, float] = dict.fromkeys(STOP_STATES, 0.0)
    found.update(seconds)  # type: ignore[typeddict-item]
    return found


def station_tally(
    station_id: str,
    *,
    busy: float,
    running: float,
    ideal: float,
    stops: dict[StationStateName, float],
    produced: int,
    scrap: int = 0,
    rework: int = 0,
    speed: float | None = None,
) -> StationTally:
    return StationTally(
        id=station_id,
        name=station_id.title(),
        busy_s=busy,
        running_s=running,
        ideal_s=ideal,
        stops_s=stops,
        produced=produced,
        scrap=scrap,
        rework=rework,
        speed=speed,
    )


def line_tally(*stations: StationTally, **changes: object) -> LineTally:
    fields: dict[str, object] = {
        "line": "line1",
        "sim_time_s": 7200.0,
        "start_s": 3600.0,
        "released": 90,
        "good": 70,
        "scrap": 3,
        "bottleneck": "machining",
        "constraint": "cutting",
        "stations": {station.id: station for station in stations},
    }
    fields.update(changes)
    return LineTally(**fields)  # type: ignore[arg-type]


def grown(station: StationTally, factor: float) -> StationTally:
    return station_tally(
        station.id,
        busy=station.busy_s * factor,
        running=station.running_s * factor,
        ideal=station.ideal_s * factor,
        stops={state: seconds * factor for state, seconds in station.stops_s.items()},
        produced=round(station.produced * factor),
        scrap=round(station.scrap * factor),
        rework=round(station.rework * factor),
        speed=station.speed,
    )
