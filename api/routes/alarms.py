"""Alarms: what needs a look, and what an operator did about it.

The rules below say which conditions hold now, from the twin's view and the ingest
counters. Each condition is an alarm of the line's ISA-18.2 alarm book
(``api.alarm_book``): raised when the condition appears, cleared when it goes,
acknowledged, shelved or taken out of service by an operator, and kept in the
line's history file with every change (``GET /alarms/history``). ``GET /alarms``
lists what is not normal: active, waiting for an acknowledgement, shelved or out
of service. The rules:

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

A book kept by an earlier version may still hold ``anomaly`` alarms, raised by the
drift detector that the sensor watch replaced (docs/alarms.md): no rule raises
them now, and the first look clears them.

Each alarm links to its station's view (``/stations/{id}``), or to ``/healthz``; asked
for under ``/lines/{line_id}``, the alarms are that line's and link under it. An
alarm's id is ``kind:station:what`` (``-`` where it names none): ``what`` is the
parameter of a drift, ``gaps`` or ``malformed`` for the ingest. Priorities:
``broken_sensor`` and ``ingest`` high, ``lag`` medium, ``model_drift`` low.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.datastructures import State

from api.alarm_book import Condition, LineAlarms, line_alarms
from api.deps import LineDep, LineStack, lag_alarm_s, lag_alarms_raised
from api.learnt import recent_learnt
from api.shadow import DEFAULT_PERIOD_S, forecaster
from api.stream import TwinStream
from sensors.alarm_topics import AlarmTopics
from twin.alarms.lifecycle import STATE_CODES, AlarmKey, Priority, Transition
from twin.alarms.lifecycle import Alarm as BookAlarm
from twin.alarms.lifecycle import State as AlarmState
from twin.config.line import SENSOR_NAMES, Sensors
from twin.experiments.drift_cost import DriftCost
from twin.state.views import LineView, StationView

router = APIRouter(tags=["alarms"])
log = logging.getLogger(__name__)

STALE_PERIODS = 5
DEFAULT_TELEMETRY_PERIOD_S = Sensors().telemetry_period_s
# "anomaly": only in a book kept by an earlier version (see above).
Kind = Literal["anomaly", "broken_sensor", "ingest", "lag", "model_drift", "sensor"]
PRIORITY: dict[str, Priority] = {
    "broken_sensor": "high",
    "sensor": "high",
    "ingest": "high",
    "lag": "medium",
    "model_drift": "low",
}


class Alarm(BaseModel):
    id: str = Field(description="kind:station:what, the same each time the alarm comes back.")
    station: str | None = Field(description="The station, or null for the line or the ingest.")
    kind: Kind
    what: str | None = Field(
        description="What in the station or the line: a drift's parameter, the ingest's "
        "gaps or malformed messages."
    )
    priority: Priority
    severity: Literal["warning", "critical"] = Field(
        description="critical for the high and critical priorities, else warning."
    )
    state: AlarmState = Field(description="Its ISA-18.2 state.")
    state_code: str = Field(description="The state as ISA-18.2 abbreviates it: UNACK, ACKED...")
    active: bool = Field(description="Whether the condition holds now.")
    acknowledged: bool
    occurrence: int = Field(description="How many times it was annunciated.")
    raised_at_s: float | None = Field(description="Line time (s) this occurrence was raised.")
    since: float | None = Field(
        description="Simulation time (s) the condition began, where the rule knows it."
    )
    shelved_until_s: float | None = Field(description="Line time (s) a shelf ends.")
    shelf_reason: str | None
    detail: str
    evidence: dict[str, Any] | None = Field(description="The numbers behind it.")
    link: str = Field(
        description="Where to look: the station's view, /twin, /healthz or /model/drift."
    )


class SensorWatchStatus(BaseModel):
    """The sensor watch (docs/alarms.md#the-sensor-watch): learning from the live
    stream, fitting, watching (its ``sensor`` alarms are in the list), or failed."""

    state: Literal["learning", "fitting", "watching", "failed"]
    learn_hours: float = Field(description="Line hours it learns from before it judges.")
    learned_hours: float = Field(description="Line hours learnt so far.")
    sensors: int = Field(description="Sensors it judges.")
    skipped: int = Field(
        description="Readings not judged: taken while the station did what the hours it "
        "learnt from never showed (a state, a setpoint beyond their range)."
    )
    held: int = Field(
        default=0,
        description="Messages waiting for the twin's watermark: the watch takes the line's "
        "messages in line-time order, as the twin's figures are.",
    )
    held_forced: int = Field(
        default=0,
        description="Messages taken beyond the watermark because too many waited (a "
        "stream that never completes): judged maybe out of order.",
    )
    renewals: dict[str, float] = Field(
        default_factory=dict,
        description="Per station whose line renews its tools on a plan, the wear at which "
        "it does (learnt): a wear alarm within it is held back, past it raised.",
    )
    wear_on_plan: list[str] = Field(
        default_factory=list,
        description="Stations whose tool wear is past the wear alarm's level but within "
        "the line's renewal plan: held back (designed suppression).",
    )
    error: str | None = None


class Alarms(BaseModel):
    sim_time_s: float | None = Field(description="The line's clock when the alarms were derived.")
    stale_after_periods: int = Field(
        description="broken_sensor: telemetry periods without a reading."
    )
    alarms: list[Alarm]
    sensor_watch: SensorWatchStatus | None = Field(
        default=None, description="The sensor watch, when the line runs one."
    )


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


def _condition(
    kind: Kind,
    message: str,
    station: str | None = None,
    what: str | None = None,
    **evidence: Any,
) -> Condition:
    return Condition(AlarmKey(kind, station, what), PRIORITY[kind], message, evidence)


# The sensor watch's alarms: a sensor that lies or is lost is high; spikes are
# medium (the reading is right most of the time); a worn tool is low (maintenance).
SENSOR_PRIORITY: dict[str, Priority] = {"spike": "medium", "wear": "low"}


def sensor_watch_of(line: LineStack) -> Any:
    """The line's sensor watch (``models.anomaly.live_watch``), or None."""
    return getattr(line.runtime, "sensor_watch", None) if line.runtime is not None else None


def _sensor_conditions(watch: Any) -> list[Condition]:
    if watch is None:
        return []
    found = []
    for alarm in watch.active():
        if alarm.on_plan:
            # Designed suppression (ISA-18.2): a tool worn within the wear at which
            # the line's own maintenance renews it needs no operator; past it, it does.
            continue
        evidence = {
            "kind": alarm.kind,
            "since_s": alarm.started_s,
            "raised_s": alarm.raised_s,
            "expected": alarm.expected,
            "seen": alarm.seen,
            "sd_apart": alarm.sd_apart,
            "renewed_at": alarm.renewed_at,
        }
        found.append(
            Condition(
                AlarmKey("sensor", alarm.station, alarm.sensor),
                SENSOR_PRIORITY.get(alarm.kind, "high"),
                alarm.describe(),
                {k: v for k, v in evidence.items() if v is not None},
            )
        )
    return found


def _station_conditions(
    line: LineStack, station: StationView, now: float | None
) -> list[Condition]:
    found = []
    if station.telemetry is not None and now is not None:
        period = _telemetry_period_s(line, station.id)
        silent = now - station.telemetry.sim_time_s
        if silent > STALE_PERIODS * period:
            found.append(
                _condition(
                    "broken_sensor",
                    f"no telemetry for {silent:.0f} s of simulation time "
                    f"(more than {STALE_PERIODS} periods of {period:g} s)",
                    station.id,
                    since_s=station.telemetry.sim_time_s,
                    silent_s=silent,
                    period_s=period,
                )
            )
    return found


DEFAULT_LAG_ALARM_S = 10.0
# The lag alarm clears only once the lag is back under this share of its bound: a lag
# that hovers about the bound does not raise and clear it at every look.
LAG_CLEAR_SHARE = 0.5


def _lag_conditions(view: LineView, bound_s: float | None, raised: set[str]) -> list[Condition]:
    """``raised``: the lines whose alarm is up (the hysteresis), kept between looks."""
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
        _condition(
            "lag",
            f"the twin is behind its line by {view.lag_s:.0f} s of line time "
            f"({wall:.1f} s at {speed:g}x; raised above {bound:g} s, clears under "
            f"{clears:g} s){messages}: its figures are as of line time "
            f"{view.sim_time_s or 0:.0f} s",
            since_s=view.sim_time_s,
            lag_s=view.lag_s,
            wall_s=wall,
            bound_s=bound,
        )
    ]


def _ingest_conditions(health: dict[str, Any]) -> list[Condition]:
    found = []
    gaps = health.get("gaps") or 0
    if isinstance(gaps, int) and gaps > 0:
        found.append(
            _condition(
                "ingest",
                f"{gaps} sequence gaps: messages were lost between line and twin",
                what="gaps",
                gaps=gaps,
            )
        )
    malformed = health.get("malformed") or {}
    total = sum(count for count in malformed.values() if isinstance(count, int))
    if total > 0:
        kinds = ", ".join(f"{kind} {count}" for kind, count in malformed.items() if count)
        found.append(
            _condition(
                "ingest",
                f"{total} malformed messages were dropped ({kinds})",
                what="malformed",
                malformed=total,
            )
        )
    return found


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


def _drift_conditions(line: LineStack, costs: list[DriftCost]) -> list[Condition]:
    if line.learner is None or line.config is None:
        return []
    priced = {(c.station, c.parameter): c for c in costs}
    found = []
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
        found.append(
            _condition(
                "model_drift",
                f"{item.parameter} is {item.ratio:.2f}x the line file's: learnt "
                f"{_quantity(item.value, unit)} (95% interval {_quantity(item.low, unit)} to "
                f"{_quantity(item.high, unit)}, {item.n} observations) against "
                f"{_quantity(nominal, unit)}{costs_text}",
                item.station,
                item.parameter,
                learnt=item.value,
                low=item.low,
                high=item.high,
                nominal=nominal,
                n=item.n,
            )
        )
    return found


def _history_path(line: LineStack) -> Any:
    return getattr(line.history, "path", None)


def book_of(state: State, line: LineStack) -> LineAlarms:
    """The line's alarm book, its record in the line's history file."""
    twin = line.twin
    return line_alarms(
        state,
        line.id,
        _history_path(line),
        # History's way in (the InfluxDB copy follows it); a bare store without one.
        writer=line.writer if line.writer is not None else line.history,
        place={"site": twin.site, "area": twin.area, "line": twin.line},
    )


_LOGGED: set[tuple[str, str, str]] = set()


def _log_once(line_id: str, rule: str, exc: Exception) -> None:
    """Log a failing rule with its traceback the first time it fails so (the rules
    run every second), then only at debug level."""
    key = (line_id, rule, f"{type(exc).__name__}: {exc}"[:500])
    if key in _LOGGED:
        log.debug("alarm rule %s of %s failed again: %s", rule, line_id, key[2])
        return
    if len(_LOGGED) < 1000:
        _LOGGED.add(key)
    log.exception("alarm rule %s of %s failed; the other rules go on", rule, line_id)


def evaluate(state: State, line: LineStack) -> tuple[LineView, LineAlarms]:
    """Run the rules on the line as it is now and hand what holds to its book."""
    view = line.twin.view()
    conditions = [
        condition
        for station in view.stations
        for condition in _station_conditions(line, station, view.sim_time_s)
    ]
    conditions += _lag_conditions(view, lag_alarm_s(state), lag_alarms_raised(state))
    if line.ingest is not None:
        conditions += _ingest_conditions(line.ingest.health())
    period: float = getattr(state, "forecast_period_s", DEFAULT_PERIOD_S)
    try:
        conditions += _drift_conditions(line, forecaster(state, line.id, period).drift_costs)
        drift_judged = True
    except Exception as exc:  # one rule that fails must not silence the others
        drift_judged = False
        _log_once(line.id, "the learnt line's drift", exc)
    watch = sensor_watch_of(line)
    conditions += _sensor_conditions(watch)
    watching = watch is not None and watch.watching
    book = book_of(state, line)
    heard = {station.id for station in view.stations if station.telemetry is not None}
    learns = line.learner is not None and line.config is not None

    def judged(key: AlarmKey) -> bool:
        """Whether these rules could see ``key``'s condition now."""
        if key.kind == "broken_sensor":
            return key.station in heard
        if key.kind == "ingest":
            return line.ingest is not None
        if key.kind == "model_drift":
            return learns and drift_judged  # a rule that failed leaves its alarms as they are
        if key.kind == "sensor":
            # Its watch judges readings, and has had this station's since a restart.
            return watching and key.station in heard
        # The lag rule sees its condition always, and an anomaly's never holds now; an
        # alarm of another source is not these rules' to clear.
        return key.kind in ("lag", "anomaly")

    # A twin that has heard nothing yet (after a restart) has no clock: the book's
    # last time stands in, and no shelf expires on it.
    book.evaluate(conditions, view.sim_time_s, judged)
    return view, book


class AlarmChange(BaseModel):
    """One change of an alarm, as the history and the live stream give it."""

    alarm_id: str
    occurrence: int
    event: str
    before: str
    after: str
    at_s: float = Field(description="Line time (s).")
    wall_ms: int = Field(description="Wall clock, Unix ms.")
    priority: Priority
    kind: str
    station: str | None
    what: str | None
    message: str
    by: str | None
    reason: str | None
    shelved_until_s: float | None
    evidence: dict[str, Any] | None

    @classmethod
    def of(cls, transition: Transition) -> AlarmChange:
        data = transition.as_dict()
        data["what"] = data.pop("sensor")
        return cls.model_validate(data)


def streamed(hub: TwinStream) -> Callable[[Transition], None]:
    """A listener of a line's alarm book that puts each change on the line's stream."""

    def listener(transition: Transition) -> None:
        hub.alarm(transition.station, AlarmChange.of(transition).model_dump_json())

    return listener


def message_fields(alarm: BookAlarm, changed_at_s: float) -> dict[str, Any]:
    """What the alarm's MQTT message says (``twin.contract.AlarmMessage`` without
    its header)."""
    key = alarm.key
    return {
        "alarm_id": alarm.id,
        "kind": key.kind,
        "station": key.station,
        "what": key.sensor,
        "priority": alarm.priority,
        "state": alarm.state,
        "state_code": STATE_CODES[alarm.state],
        "active": alarm.active,
        "acknowledged": alarm.acknowledged,
        "occurrence": alarm.occurrence,
        "raised_at_s": alarm.since_s,
        "changed_at_s": changed_at_s,
        "shelved_until_s": alarm.shelved_until_s,
        "message": alarm.message,
        "evidence": dict(alarm.evidence) if alarm.evidence is not None else None,
    }


def published(publisher: AlarmTopics, book: LineAlarms) -> Callable[[Transition], None]:
    """A listener of a line's alarm book that keeps the alarm's retained message on
    the line's MQTT tree as the alarm now is (removed once it is normal)."""

    def listener(transition: Transition) -> None:
        alarm = book.book.get(transition.alarm_id)
        topic = publisher.topic(transition.kind, transition.station, transition.sensor)
        fields = None if alarm.state == "normal" else message_fields(alarm, transition.at_s)
        publisher.publish(topic, fields)

    return listener


def publish_all(publisher: AlarmTopics, book: LineAlarms) -> None:
    """Say every alarm of the book on the tree, as at a start: the standing ones
    retained, the normal ones removed (a message left from before a restart)."""
    for alarm in book.book.alarms():
        key = alarm.key
        fields = None if alarm.state == "normal" else message_fields(alarm, alarm.changed_s or 0.0)
        publisher.publish(publisher.topic(key.kind, key.station, key.sensor), fields)


def link_of(line: LineStack, key: AlarmKey) -> str:
    if key.kind == "model_drift":
        return line.link("/model/drift")
    if key.station is not None:
        return line.link(f"/stations/{quote(key.station, safe='')}")
    if key.kind == "lag":
        return line.link("/twin")
    return "/healthz"


def shown(line: LineStack, alarm: BookAlarm) -> Alarm:
    """An alarm of the book as the API shows it."""
    key = alarm.key
    evidence = dict(alarm.evidence) if alarm.evidence is not None else None
    since = evidence.get("since_s") if evidence is not None else None
    return Alarm(
        id=alarm.id,
        station=key.station,
        kind=key.kind,
        what=key.sensor,
        priority=alarm.priority,
        severity="critical" if alarm.priority in ("critical", "high") else "warning",
        state=alarm.state,
        state_code=STATE_CODES[alarm.state],
        active=alarm.active,
        acknowledged=alarm.acknowledged,
        occurrence=alarm.occurrence,
        raised_at_s=alarm.since_s,
        since=since if isinstance(since, int | float) else None,
        shelved_until_s=alarm.shelved_until_s,
        shelf_reason=alarm.shelf_reason,
        detail=alarm.message,
        evidence=evidence,
        link=link_of(line, key),
    )


@router.get(
    "/alarms",
    response_model=Alarms,
    summary="The alarm list: active, unacknowledged, shelved and out-of-service alarms "
    "(anomalies, silent sensors, ingest losses, a twin behind its line, a drifted line)",
    description=__doc__,
)
def read_alarms(line: LineDep, request: Request) -> Alarms:
    view, book = evaluate(request.app.state, line)
    watch = sensor_watch_of(line)
    return Alarms(
        sim_time_s=view.sim_time_s,
        stale_after_periods=STALE_PERIODS,
        alarms=[shown(line, alarm) for alarm in book.book.listed()],
        sensor_watch=(
            SensorWatchStatus.model_validate(watch.status(), from_attributes=True)
            if watch is not None
            else None
        ),
    )
