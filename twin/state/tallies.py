"""What the twin counted, before it is priced: the tallies the economics value.

A tally holds the cumulative quantities of the line and of each station as the
twin's view reports them (``twin.state.views.LineView``): planned busy time,
running time (APT), the ideal time of the parts made, the time in each stop
state, the counts and the latest speed. The economics (``twin.state.economics``)
price a tally; the difference of two tallies is what happened between them, and
a tally follows another only if nothing went back, as it does after a restart
of the twin.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from twin.contract import StationStateName
from twin.state.views import LineView

SimTime = float
StationId = str

# The stop states whose time is paid for (ISO 22400 PBT minus APT).
STOP_STATES: tuple[StationStateName, ...] = (
    "setup",
    "maintenance",
    "down",
    "starved",
    "blocked",
    "stopped",
)


@dataclass(frozen=True, slots=True)
class StationTally:
    """Cumulative quantities of one station, as the view reports them."""

    id: StationId
    name: str
    busy_s: float
    running_s: float
    ideal_s: float
    stops_s: dict[StationStateName, float]
    produced: int
    scrap: int
    rework: int
    speed: float | None

    def minus(self, base: StationTally) -> StationTally:
        return replace(
            self,
            busy_s=self.busy_s - base.busy_s,
            running_s=self.running_s - base.running_s,
            ideal_s=self.ideal_s - base.ideal_s,
            stops_s={
                state: seconds - base.stops_s.get(state, 0.0)
                for state, seconds in self.stops_s.items()
            },
            produced=self.produced - base.produced,
            scrap=self.scrap - base.scrap,
            rework=self.rework - base.rework,
        )


@dataclass(frozen=True, slots=True)
class LineTally:
    """Cumulative quantities of the line at one simulation time."""

    line: str
    sim_time_s: SimTime | None
    start_s: SimTime | None
    released: int
    good: int
    scrap: int
    bottleneck: str | None
    constraint: str | None
    stations: dict[StationId, StationTally] = field(default_factory=dict)

    @classmethod
    def of(cls, view: LineView) -> LineTally:
        stations = {}
        for station in view.stations:
            kpis = station.kpis
            running = kpis.actual_production_time_s
            stations[station.id] = StationTally(
                id=station.id,
                name=station.name,
                busy_s=kpis.planned_busy_time_s,
                running_s=running,
                ideal_s=running * kpis.effectiveness if kpis.effectiveness is not None else 0.0,
                stops_s={state: float(getattr(kpis, f"{state}_time_s")) for state in STOP_STATES},
                produced=kpis.produced,
                scrap=kpis.scrap,
                rework=kpis.rework,
                speed=station.process.get("speed"),
            )
        line = view.kpis
        start = None if view.sim_time_s is None else view.sim_time_s - line.observed_s
        return cls(
            line=view.line,
            sim_time_s=view.sim_time_s,
            start_s=start,
            released=line.work_in_process + line.good + line.scrap,
            good=line.good,
            scrap=line.scrap,
            bottleneck=line.bottleneck,
            constraint=line.constraint,
            stations=stations,
        )

    def minus(self, base: LineTally) -> LineTally:
        """What happened between ``base`` and this tally (a station new since is whole)."""
        return replace(
            self,
            start_s=base.sim_time_s,
            released=self.released - base.released,
            good=self.good - base.good,
            scrap=self.scrap - base.scrap,
            stations={
                station_id: station.minus(base.stations[station_id])
                if station_id in base.stations
                else station
                for station_id, station in self.stations.items()
            },
        )

    def follows(self, base: LineTally) -> bool:
        """Whether this tally can come after ``base`` (no restart of the twin between)."""
        if self.sim_time_s is None or base.sim_time_s is None:
            return False
        return (
            self.sim_time_s >= base.sim_time_s
            and self.good >= base.good
            and self.released >= base.released
            and all(
                station_id in self.stations and self.stations[station_id].busy_s >= station.busy_s
                for station_id, station in base.stations.items()
            )
        )
