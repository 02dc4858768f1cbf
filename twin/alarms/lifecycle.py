"""The alarm lifecycle as ISA-18.2 (IEC 62682) draws it: every alarm the twin knows,
its state, and each change of state as a record an operator can read back.

An alarm is one condition of one thing: a kind of fault on a sensor of a station
(``offset`` on ``machining/temperature_c``), or a condition of the line or of the
twin itself (a lost message, a twin behind its line, a parameter that drifted).
Its id names it (``AlarmKey.id``) and stays the same each time it comes back; each
time it is annunciated again it starts a new occurrence.

The states, with ISA-18.2's letters:

- ``normal`` (A): not active, nothing to acknowledge.
- ``unacknowledged`` (B): active, no operator has acknowledged it yet.
- ``acknowledged`` (C): active and acknowledged.
- ``returned_unacknowledged`` (D): it cleared before anyone acknowledged it.
- ``shelved`` (E): an operator took it off the list for a while, with a reason; it
  comes back by itself when the shelf expires, or when they unshelve it.
- ``out_of_service`` (G): taken out of service (a sensor under repair); it comes
  back only when an operator returns it to service.

The condition keeps being followed while an alarm is shelved or out of service:
when it comes back, an alarm still active is annunciated again (unacknowledged),
one that cleared meanwhile is normal. Times are the twin's line time in seconds,
so that a simulated line's shelf lasts line minutes, as its alarms are raised in
line time; for a real line the two are the same.

Nothing here knows MQTT, the API or the store: ``AlarmBook`` takes conditions and
operator actions and returns the ``Transition`` records, which the runtime stores,
publishes and streams. ``AlarmBook.replay`` rebuilds the book from stored records
after a restart.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

State = Literal[
    "normal",
    "unacknowledged",
    "acknowledged",
    "returned_unacknowledged",
    "shelved",
    "out_of_service",
]
Event = Literal[
    "raise",
    "clear",
    "acknowledge",
    "shelve",
    "unshelve",
    "shelf_expired",
    "out_of_service",
    "return_to_service",
]
Priority = Literal["critical", "high", "medium", "low"]
PRIORITIES: tuple[Priority, ...] = ("critical", "high", "medium", "low")
# ISA-18.2's letters for the states, as an alarm list shows them.
STATE_CODES: dict[State, str] = {
    "normal": "NORM",
    "unacknowledged": "UNACK",
    "acknowledged": "ACKED",
    "returned_unacknowledged": "RTNUN",
    "shelved": "SHLVD",
    "out_of_service": "OOS",
}
# A shelf lasts at most this long (line seconds): ISA-18.2 asks that shelving be
# time-limited, so that no alarm is forgotten on the shelf.
MAX_SHELF_S = 7 * 24 * 3600.0
REASON_MAX_CHARS = 200


class AlarmError(ValueError):
    """An operator action that cannot be done: ``kind`` says why (``unknown``, a
    ``conflict`` with the alarm's state, or ``invalid`` input), ``detail`` how."""

    def __init__(self, kind: Literal["unknown", "conflict", "invalid"], detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True, slots=True)
class AlarmKey:
    """What an alarm is of: its kind, and the station and sensor it names (None for
    the line or the twin itself)."""

    kind: str
    station: str | None = None
    sensor: str | None = None

    @property
    def id(self) -> str:
        """``kind:station:sensor``, with ``-`` for what it does not name: ids of
        stations and sensors hold no ':'."""
        return f"{self.kind}:{self.station or '-'}:{self.sensor or '-'}"

    @classmethod
    def parse(cls, alarm_id: str) -> AlarmKey:
        parts = alarm_id.split(":")
        if len(parts) != 3 or not parts[0]:
            raise AlarmError("invalid", f"alarm id {alarm_id!r} is not kind:station:sensor")
        kind, station, sensor = parts
        return cls(kind, None if station == "-" else station, None if sensor == "-" else sensor)


@dataclass(frozen=True, slots=True)
class Transition:
    """One change of an alarm: what happened (``event``), the state before and after,
    when (line time, s; and the wall clock, ms), who did it (an operator action) and
    why, and what the alarm said then (``message``, ``evidence``)."""

    alarm_id: str
    occurrence: int
    event: Event
    before: State
    after: State
    at_s: float
    wall_ms: int
    priority: Priority
    kind: str
    station: str | None
    sensor: str | None
    message: str = ""
    by: str | None = None
    reason: str | None = None
    shelved_until_s: float | None = None
    evidence: Mapping[str, Any] | None = None

    @property
    def annunciated(self) -> bool:
        """Whether this put the alarm in front of the operator anew (the moment the
        alarm-system figures count)."""
        return self.after == "unacknowledged" and self.before != "unacknowledged"

    def as_dict(self) -> dict[str, Any]:
        return {
            "alarm_id": self.alarm_id,
            "occurrence": self.occurrence,
            "event": self.event,
            "before": self.before,
            "after": self.after,
            "at_s": self.at_s,
            "wall_ms": self.wall_ms,
            "priority": self.priority,
            "kind": self.kind,
            "station": self.station,
            "sensor": self.sensor,
            "message": self.message,
            "by": self.by,
            "reason": self.reason,
            "shelved_until_s": self.shelved_until_s,
            "evidence": dict(self.evidence) if self.evidence is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Transition:
        """The transition ``as_dict`` wrote (a stored record read back)."""
        return cls(
            alarm_id=str(data["alarm_id"]),
            occurrence=int(data["occurrence"]),
            event=data["event"],
            before=data["before"],
            after=data["after"],
            at_s=float(data["at_s"]),
            wall_ms=int(data["wall_ms"]),
            priority=data["priority"],
            kind=str(data["kind"]),
            station=data.get("station"),
            sensor=data.get("sensor"),
            message=str(data.get("message") or ""),
            by=data.get("by"),
            reason=data.get("reason"),
            shelved_until_s=data.get("shelved_until_s"),
            evidence=data.get("evidence"),
        )


@dataclass
class Alarm:
    """One alarm as the book keeps it. ``active`` is the condition, followed in every
    state; ``acknowledged`` whether the occurrence was acknowledged."""

    key: AlarmKey
    priority: Priority
    message: str = ""
    evidence: Mapping[str, Any] | None = None
    active: bool = False
    acknowledged: bool = True
    occurrence: int = 0
    since_s: float | None = None  # when the occurrence was raised
    shelved_until_s: float | None = None
    shelf_reason: str | None = None
    out_of_service: bool = False
    changed_s: float | None = None
    history: list[Transition] = field(default_factory=list, repr=False)

    @property
    def id(self) -> str:
        return self.key.id

    @property
    def state(self) -> State:
        if self.out_of_service:
            return "out_of_service"
        if self.shelved_until_s is not None:
            return "shelved"
        if self.active:
            return "acknowledged" if self.acknowledged else "unacknowledged"
        return "normal" if self.acknowledged else "returned_unacknowledged"


def _finite(evidence: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The evidence with a number that is not finite as None: JSON and the record
    have no infinity, and a bad reading must not cost the alarm its record."""
    if evidence is None:
        return None
    return {
        name: None if isinstance(value, float) and not math.isfinite(value) else value
        for name, value in evidence.items()
    }


def _reason(text: str | None, what: str, required: bool) -> str | None:
    if text is None or not text.strip():
        if required:
            raise AlarmError("invalid", f"reason: a {what} needs a reason")
        return None
    text = text.strip()
    if len(text) > REASON_MAX_CHARS:
        raise AlarmError("invalid", f"reason: at most {REASON_MAX_CHARS} characters")
    return text


class AlarmBook:
    """Every alarm of one line and its state; thread-safe. Each method returns the
    transitions it made, in order, for the caller to store, publish and stream."""

    def __init__(self) -> None:
        self._alarms: dict[str, Alarm] = {}
        self._lock = threading.Lock()

    # -- reading ------------------------------------------------------------------------
    def get(self, alarm_id: str) -> Alarm:
        with self._lock:
            return self._get(alarm_id)

    def _get(self, alarm_id: str) -> Alarm:
        alarm = self._alarms.get(alarm_id)
        if alarm is None:
            raise AlarmError("unknown", f"no alarm {alarm_id!r}")
        return alarm

    def alarms(self) -> list[Alarm]:
        """Every alarm the book knows, normal ones too, in the order first raised."""
        with self._lock:
            return list(self._alarms.values())

    def listed(self) -> list[Alarm]:
        """What an operator's alarm list shows: every alarm not normal (active,
        waiting for an acknowledgement, shelved or out of service), by priority, then
        the newest first."""
        shown = [a for a in self.alarms() if a.state != "normal"]
        shown.sort(key=lambda a: -(a.since_s or 0.0))
        shown.sort(key=lambda a: PRIORITIES.index(a.priority))
        return shown

    # -- the condition ------------------------------------------------------------------
    def condition(
        self,
        key: AlarmKey,
        active: bool,
        at_s: float,
        *,
        priority: Priority = "medium",
        message: str = "",
        evidence: Mapping[str, Any] | None = None,
        wall_ms: int = 0,
    ) -> list[Transition]:
        """The condition of ``key`` as its source sees it at ``at_s``: raised, still
        active (no transition), cleared, or still normal (nothing). An alarm never
        seen before and not active is not made."""
        with self._lock:
            alarm = self._alarms.get(key.id)
            if alarm is None:
                if not active:
                    return []
                alarm = self._alarms[key.id] = Alarm(key, priority)
            evidence = _finite(evidence)
            if active == alarm.active:
                if active and message:
                    alarm.message, alarm.evidence = message, evidence
                return []
            before = alarm.state
            alarm.active = active
            if active:
                alarm.priority, alarm.message, alarm.evidence = priority, message, evidence
                if alarm.state in ("shelved", "out_of_service"):
                    # Followed, not annunciated: an acknowledgement is owed once it is back.
                    alarm.acknowledged = False
                    return [self._record(alarm, "raise", before, at_s, wall_ms)]
                alarm.occurrence += 1
                alarm.acknowledged = False
                alarm.since_s = at_s
                return [self._record(alarm, "raise", before, at_s, wall_ms)]
            if alarm.state in ("shelved", "out_of_service"):
                # Cleared while off the list: nothing is owed when it comes back.
                alarm.acknowledged = True
            return [self._record(alarm, "clear", before, at_s, wall_ms)]

    # -- operator actions ---------------------------------------------------------------
    def acknowledge(
        self, alarm_id: str, at_s: float, by: str, *, note: str | None = None, wall_ms: int = 0
    ) -> list[Transition]:
        with self._lock:
            alarm = self._get(alarm_id)
            before = alarm.state
            if before not in ("unacknowledged", "returned_unacknowledged"):
                raise AlarmError(
                    "conflict", f"{alarm_id} is {before}: there is nothing to acknowledge"
                )
            alarm.acknowledged = True
            return [
                self._record(
                    alarm, "acknowledge", before, at_s, wall_ms, by, _reason(note, "note", False)
                )
            ]

    def shelve(
        self,
        alarm_id: str,
        at_s: float,
        for_s: float,
        reason: str,
        by: str,
        *,
        wall_ms: int = 0,
    ) -> list[Transition]:
        """Off the list for ``for_s`` line seconds (at most ``MAX_SHELF_S``), with a
        reason. A shelved alarm's shelf can be set again, to a new time."""
        if not 0 < for_s <= MAX_SHELF_S:
            raise AlarmError(
                "invalid", f"for_s: a shelf lasts more than 0 and at most {MAX_SHELF_S:g} s"
            )
        text = _reason(reason, "shelf", True)
        with self._lock:
            alarm = self._get(alarm_id)
            before = alarm.state
            if before in ("normal", "out_of_service"):
                raise AlarmError("conflict", f"{alarm_id} is {before}: there is nothing to shelve")
            alarm.shelved_until_s = at_s + for_s
            alarm.shelf_reason = text
            return [self._record(alarm, "shelve", before, at_s, wall_ms, by, text)]

    def unshelve(
        self, alarm_id: str, at_s: float, by: str, *, wall_ms: int = 0
    ) -> list[Transition]:
        with self._lock:
            alarm = self._get(alarm_id)
            if alarm.state != "shelved":
                raise AlarmError("conflict", f"{alarm_id} is {alarm.state}, not shelved")
            return [self._off_shelf(alarm, "unshelve", at_s, wall_ms, by)]

    def remove_from_service(
        self, alarm_id: str, at_s: float, reason: str, by: str, *, wall_ms: int = 0
    ) -> list[Transition]:
        text = _reason(reason, "removal from service", True)
        with self._lock:
            alarm = self._get(alarm_id)
            before = alarm.state
            if before == "out_of_service":
                raise AlarmError("conflict", f"{alarm_id} is out of service already")
            alarm.out_of_service = True
            alarm.shelved_until_s = None
            alarm.shelf_reason = None
            return [self._record(alarm, "out_of_service", before, at_s, wall_ms, by, text)]

    def return_to_service(
        self, alarm_id: str, at_s: float, by: str, *, wall_ms: int = 0
    ) -> list[Transition]:
        with self._lock:
            alarm = self._get(alarm_id)
            if alarm.state != "out_of_service":
                raise AlarmError("conflict", f"{alarm_id} is {alarm.state}, not out of service")
            alarm.out_of_service = False
            return [self._back(alarm, "return_to_service", "out_of_service", at_s, wall_ms, by)]

    def tick(self, at_s: float, *, wall_ms: int = 0) -> list[Transition]:
        """The shelves that have expired by ``at_s``."""
        with self._lock:
            expired = [
                alarm
                for alarm in self._alarms.values()
                if alarm.shelved_until_s is not None
                and not alarm.out_of_service
                and alarm.shelved_until_s <= at_s
            ]
            return [
                self._off_shelf(alarm, "shelf_expired", at_s, wall_ms, None) for alarm in expired
            ]

    # -- inside ---------------------------------------------------------------------------
    def _off_shelf(
        self, alarm: Alarm, event: Event, at_s: float, wall_ms: int, by: str | None
    ) -> Transition:
        alarm.shelved_until_s = None
        alarm.shelf_reason = None
        return self._back(alarm, event, "shelved", at_s, wall_ms, by)

    def _back(
        self,
        alarm: Alarm,
        event: Event,
        before: State,
        at_s: float,
        wall_ms: int,
        by: str | None,
    ) -> Transition:
        """Back on the list: an alarm active now is annunciated anew (a new
        occurrence, to acknowledge); one that is not is normal."""
        if alarm.active:
            alarm.occurrence += 1
            alarm.acknowledged = False
            alarm.since_s = at_s
        else:
            alarm.acknowledged = True
        return self._record(alarm, event, before, at_s, wall_ms, by)

    def _record(
        self,
        alarm: Alarm,
        event: Event,
        before: State,
        at_s: float,
        wall_ms: int,
        by: str | None = None,
        reason: str | None = None,
    ) -> Transition:
        key = alarm.key
        transition = Transition(
            alarm_id=alarm.id,
            occurrence=alarm.occurrence,
            event=event,
            before=before,
            after=alarm.state,
            at_s=at_s,
            wall_ms=wall_ms,
            priority=alarm.priority,
            kind=key.kind,
            station=key.station,
            sensor=key.sensor,
            message=alarm.message,
            by=by,
            reason=reason,
            shelved_until_s=alarm.shelved_until_s,
            evidence=alarm.evidence,
        )
        alarm.changed_s = at_s
        alarm.history.append(transition)
        return transition

    # -- restart ------------------------------------------------------------------------
    @classmethod
    def replay(cls, transitions: Iterable[Transition]) -> AlarmBook:
        """The book as the stored ``transitions`` (in the order made) left it."""
        book = cls()
        for record in transitions:
            alarm = book._alarms.get(record.alarm_id)
            if alarm is None:
                key = AlarmKey(record.kind, record.station, record.sensor)
                alarm = book._alarms[record.alarm_id] = Alarm(key, record.priority)
            _apply(alarm, record)
            alarm.history.append(record)
        return book


def _apply(alarm: Alarm, record: Transition) -> None:
    """Set ``alarm`` to what ``record`` says it became."""
    alarm.priority = record.priority
    alarm.message, alarm.evidence = record.message, record.evidence
    alarm.changed_s = record.at_s
    if record.event == "raise":
        alarm.active = True
    elif record.event == "clear":
        alarm.active = False
    if record.occurrence != alarm.occurrence:
        alarm.occurrence = record.occurrence
        alarm.since_s = record.at_s
    after = record.after
    alarm.out_of_service = after == "out_of_service"
    if after == "shelved":
        alarm.shelved_until_s = record.shelved_until_s
        if record.event == "shelve":
            alarm.shelf_reason = record.reason
    else:
        alarm.shelved_until_s = None
        alarm.shelf_reason = None
    if after in ("unacknowledged", "returned_unacknowledged"):
        alarm.acknowledged = False
    elif after in ("acknowledged", "normal"):
        alarm.acknowledged = True
    # Shelved or out of service: whether an acknowledgement is owed follows the
    # condition (as ``AlarmBook.condition`` sets it).
    elif record.event == "raise":
        alarm.acknowledged = False
    elif record.event == "clear":
        alarm.acknowledged = True
