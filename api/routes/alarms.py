"""Alarms: what needs a look now, derived from the twin's view and the ingest counters.

Nothing is stored: each request derives the current alarms afresh, by these rules.

* ``anomaly`` (warning), per station: live scoring's ``anomaly_score`` of the
  station's latest telemetry window is at or above 1.0, the detector's alarm
  threshold. ``since`` is null: the score says nothing of when it began.
* ``broken_sensor`` (warning), per station: the station has sent telemetry, but
  its latest reading is more than ``STALE_PERIODS`` telemetry periods older than
  the line's clock (the newest ``sim_time_s`` the twin has seen from any
  message). ``since`` is the time of that latest reading. The period is the
  longest sampling period of the station's sensors in the running line's
  configuration, or the default telemetry period (10 s) when the API serves a
  twin without one. The twin keeps one reading time per station, so this sees a
  station whose sensors all went quiet, not one sensor of several.
* ``ingest`` (warning, station null): the ingest has counted sequence gaps (lost
  messages) or malformed messages since it started; the counters only grow, so
  such an alarm stays until the ingest restarts.
* ``lag`` (warning, station null): the twin's figures trail its line by more than
  ``FACTORY_TWIN_LAG_ALARM_S`` (10 s by default) of wall-clock time: its lag in
  line seconds (``/twin`` ``lag_s``: the newest line time it knows minus its
  watermark) over the line's speed in force. ``since`` is the watermark, the line
  time the figures are as of. It clears once the lag is back under half the bound
  (``LAG_CLEAR_SHARE``: a lag that hovers about the bound does not flap it).
  A line that sends no heartbeat has no known lag, and never this alarm.
* ``model_drift`` (warning), per station and parameter: the line learnt from its
  messages (``GET /model/drift``, docs/learning.md) has a parameter whose 95%
  interval leaves the line file's value out: the line no longer behaves as its
  file says, and forecasts from the file are off by that much. ``since`` is
  null. The learnt line behind it is at most 30 s old.

Each alarm links to its station's view (``/stations/{id}``), or to ``/healthz``; asked
for under ``/lines/{line_id}``, the alarms are that line's and link under it.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from api.deps import LagAlarmDep, LagAlarmsRaisedDep, LineDep, LineStack
from api.learnt import recent_learnt
from api.shadow import DEFAULT_PERIOD_S, forecaster
from twin.config.line import SENSOR_NAMES, Sensors
from twin.experiments.drift_cost import DriftCost
from twin.state.views import LineView, StationView

router = APIRouter(tags=["alarms"])

ANOMALY_THRESHOLD = 1.0
STALE_PERIODS = 5
DEFAULT_TELEMETRY_PERIOD_S = Sensors().telemetry_period_s


class Alarm(BaseModel):
    station: str | None = Field(description="The station, or null for the line or the ingest.")
    kind: Literal["anomaly", "broken_sensor", "ingest", "lag", "model_drift"]
    severity: Literal["warning", "critical"]
    since: float | None = Field(description="Simulation time (s) it began, when known.")
    detail: str
    link: str = Field(
        description="Where to look: the station's view, /twin, /healthz or /model/drift."
    )


class Alarms(BaseModel):
    sim_time_s: float | None = Field(description="The line's clock when the alarms were derived.")
    stale_after_periods: int = Field(
        description="broken_sensor: telemetry periods without a reading."
    )
    alarms: list[Alarm]


def _telemetry_period_s(line: LineStack, station_id: str) -> float:
    """The longest sampling period of a station's sensors, from the running line's
    configuration when there is one."""
    config = line.runtime.config if line.runtime is not None else None
    if config is None:
        return DEFAULT_TELEMETRY_PERIOD_S
    default = float(config.sensors.telemetry_period_s)
    for station in config.stations:
        if station.id == station_id:
            fitted = [getattr(station.sensors, name) for name in SENSOR_NAMES]
            periods = [float(spec.period_s or default) for spec in fitted if spec is not None]
            return max(periods, default=default)
    return default


def _station_alarms(line: LineStack, station: StationView, now: float | None) -> list[Alarm]:
    link = line.link(f"/stations/{quote(station.id, safe='')}")
    alarms = []
    if station.anomaly_score is not None and station.anomaly_score >= ANOMALY_THRESHOLD:
        alarms.append(
            Alarm(
                station=station.id,
                kind="anomaly",
                severity="warning",
                since=None,
                detail=f"anomaly score {station.anomaly_score:.3g} is at or above the "
                f"threshold {ANOMALY_THRESHOLD:g}",
                link=link,
            )
        )
    if station.telemetry is not None and now is not None:
        period = _telemetry_period_s(line, station.id)
        silent = now - station.telemetry.sim_time_s
        if silent > STALE_PERIODS * period:
            alarms.append(
                Alarm(
                    station=station.id,
                    kind="broken_sensor",
                    severity="warning",
                    since=station.telemetry.sim_time_s,
                    detail=f"no telemetry for {silent:.0f} s of simulation time "
                    f"(more than {STALE_PERIODS} periods of {period:g} s)",
                    link=link,
                )
            )
    return alarms


DEFAULT_LAG_ALARM_S = 10.0
# The lag alarm clears only once the lag is back under this share of its bound: a lag
# that hovers about the bound does not raise and clear it at every look.
LAG_CLEAR_SHARE = 0.5


def _lag_alarms(
    line: LineStack, view: LineView, bound_s: float | None, raised: set[str]
) -> list[Alarm]:
    """``raised``: the lines whose alarm is up (the hysteresis), kept between requests."""
    bound = bound_s or DEFAULT_LAG_ALARM_S
    key = f"{view.site}/{view.area}/{view.line}"
    if view.lag_s is None:
        raised.discard(key)
        return []
    speed = view.speed_factor or 1.0
    wall = view.lag_s / speed
    if wall > bound:
        raised.add(key)
    elif wall <= LAG_CLEAR_SHARE * bound:
        raised.discard(key)
    if key not in raised:
        return []
    messages = "" if view.lag_messages is None else f" and {view.lag_messages} messages"
    clears = LAG_CLEAR_SHARE * bound
    return [
        Alarm(
            station=None,
            kind="lag",
            severity="warning",
            since=view.sim_time_s,
            detail=f"the twin is behind its line by {view.lag_s:.0f} s of line time "
            f"({wall:.1f} s at {speed:g}x; raised above {bound:g} s, clears under "
            f"{clears:g} s){messages}: its figures are as of line time "
            f"{view.sim_time_s or 0:.0f} s",
            link=line.link("/twin"),
        )
    ]


def _ingest_alarm(detail: str) -> Alarm:
    return Alarm(
        station=None, kind="ingest", severity="warning", since=None, detail=detail, link="/healthz"
    )


def _ingest_alarms(health: dict[str, Any]) -> list[Alarm]:
    alarms = []
    gaps = health.get("gaps") or 0
    if isinstance(gaps, int) and gaps > 0:
        alarms.append(
            _ingest_alarm(f"{gaps} sequence gaps: messages were lost between line and twin")
        )
    malformed = health.get("malformed") or {}
    total = sum(count for count in malformed.values() if isinstance(count, int))
    if total > 0:
        kinds = ", ".join(f"{kind} {count}" for kind, count in malformed.items() if count)
        alarms.append(_ingest_alarm(f"{total} malformed messages were dropped ({kinds})"))
    return alarms


def _quantity(value: float, unit: str) -> str:
    """A learnt value as a plant engineer reads it: a share in percent, a duration
    in s, min or h as the dashboard shows it."""
    if unit == "share":
        return f"{100 * value:.2f} %"
    if unit == "s":
        if abs(value) < 120:
            return f"{value:.1f} s"
        if abs(value) < 7200:
            return f"{value / 60:.1f} min"
        return f"{value / 3600:.2f} h"
    return f"{value:.4g} {unit}"


def _drift_alarms(line: LineStack, costs: list[DriftCost]) -> list[Alarm]:
    if line.learner is None or line.config is None:
        return []
    priced = {(c.station, c.parameter): c for c in costs}
    alarms = []
    for item in recent_learnt(line.config, line.learner).drifted():
        unit, nominal = item.unit, item.nominal
        if nominal is None:  # drifted() lists only parameters with a file's value
            continue
        cost = priced.get((item.station, item.parameter))
        costs_text = ""
        if cost is not None:
            bounds = (
                f" (95% interval {cost.low:.1f} to {cost.high:.1f})"
                if cost.low is not None and cost.high is not None
                else ""
            )
            costs_text = f"; costs about {cost.cost_good_per_h:.1f} good parts an hour{bounds}"
        alarms.append(
            Alarm(
                station=item.station,
                kind="model_drift",
                severity="warning",
                since=None,
                detail=f"{item.parameter} is {item.ratio:.2f}x the line file's: learnt "
                f"{_quantity(item.value, unit)} (95% interval {_quantity(item.low, unit)} to "
                f"{_quantity(item.high, unit)}, {item.n} observations) against "
                f"{_quantity(nominal, unit)}{costs_text}",
                link=line.link("/model/drift"),
            )
        )
    return alarms


@router.get(
    "/alarms",
    response_model=Alarms,
    summary="Current alarms: anomalies, silent sensors, ingest losses, a twin behind its "
    "line, a line that drifted from its file",
    description=__doc__,
)
def read_alarms(
    line: LineDep, bound_s: LagAlarmDep, raised: LagAlarmsRaisedDep, request: Request
) -> Alarms:
    view = line.twin.view()
    alarms = [
        alarm
        for station in view.stations
        for alarm in _station_alarms(line, station, view.sim_time_s)
    ]
    alarms.extend(_lag_alarms(line, view, bound_s, raised))
    if line.ingest is not None:
        alarms.extend(_ingest_alarms(line.ingest.health()))
    period: float = getattr(request.app.state, "forecast_period_s", DEFAULT_PERIOD_S)
    costs = forecaster(request.app.state, line.id, period).drift_costs
    alarms.extend(_drift_alarms(line, costs))
    return Alarms(sim_time_s=view.sim_time_s, stale_after_periods=STALE_PERIODS, alarms=alarms)
