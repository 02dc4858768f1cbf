"""Commands back to the line: the plant's side of ``cmd`` and ``cmd/ack``.

The plant subscribes to its line's command topics, validates each command,
applies it, and answers on the matching ``cmd/ack`` topic with the command id,
whether it was accepted, and why. Nothing a command says can crash the plant:

- a payload that is not a valid command (not JSON, a wrong type, an unknown
  action) is rejected with the decoder's reason, naming the field;
- a command for a station the line does not have is rejected;
- a station action sent to the line topic, or a line action to a station, is
  rejected with the topic it belongs on;
- a setpoint out of its range, or unknown, is rejected by the plant;
- a command id seen before is rejected as a duplicate and not applied again,
  so a QoS 1 redelivery or a retry cannot apply a command twice.

Commands are applied on the plant's own thread (``schedule``), because SimPy is
not thread-safe; the answer is published once the command has taken effect.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from pydantic import ValidationError

from sensors.codec import DEFAULT_MAX_PAYLOAD_BYTES, encode
from sensors.topics import LineTopics
from twin.contract import (
    COMMAND_ADAPTER,
    LINE_ACTIONS,
    SCHEMA_VERSION,
    STATION_ACTIONS,
    AnyCommand,
    CommandAck,
    Maintenance,
    Pause,
    Resume,
    SetSetpoint,
    SetSpeed,
    StationStart,
    StationStop,
)
from twin.errors import all_problems
from twin.sim.physics import SetpointError
from twin.sim.plant import Plant

log = logging.getLogger(__name__)
REMEMBERED_COMMAND_IDS = 10_000
Schedule = Callable[[Callable[[], None]], None]
# Who else hears a command's answer: a protocol adapter that took the command
# (an OPC UA method call, a Sparkplug B command) and answers its own caller.
Reply = Callable[[CommandAck], None]


class LineControl(Protocol):
    """What line-level commands act on: the live runner."""

    # The speed asked for, and the one in force (lower while the line paces itself
    # on a pipeline that carries no more: twin.sim.live).
    speed: float
    speed_in_force: float

    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def set_speed(self, speed: float) -> None: ...


def _run_now(call: Callable[[], None]) -> None:
    call()


class CommandHandler:
    def __init__(
        self,
        plant: Plant,
        client: mqtt.Client,
        topics: LineTopics,
        *,
        source: str,
        control: LineControl | None = None,
        schedule: Schedule = _run_now,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        qos: int = 1,
    ) -> None:
        self.plant = plant
        self.client = client
        self.topics = topics
        self.source = source
        self.control = control
        self.schedule = schedule
        self.max_payload_bytes = max_payload_bytes
        self.qos = qos
        self._seen: OrderedDict[str, str] = OrderedDict()
        self._seq: dict[str, int] = {}
        self._lock = threading.Lock()
        self.accepted = 0
        self.rejected = 0
        # Set once the broker has confirmed the command subscriptions: a command
        # published before that is not delivered to the plant (MQTT keeps no
        # unretained message for a subscription still on its way).
        self.subscribed = threading.Event()

    # -- wiring ------------------------------------------------------------------------
    def subscriptions(self) -> list[tuple[str, int]]:
        return [(self.topics.line_command, self.qos), (self.topics.station_commands, self.qos)]

    def on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: Any,
        reason_code: Any,
        properties: Any,
    ) -> None:
        if getattr(reason_code, "is_failure", False):
            return
        self.subscribed.clear()
        # Subscribing here restores the subscriptions after every reconnect.
        client.subscribe(self.subscriptions())

    def on_subscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_codes: list[Any],
        properties: Any,
    ) -> None:
        if any(getattr(code, "is_failure", False) for code in reason_codes):
            log.error("the broker refused the command subscriptions: %s", reason_codes)
            return
        self.subscribed.set()

    def on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        try:
            self.handle(message.topic, bytes(message.payload))
        except Exception:
            log.exception("command handling failed on %s", message.topic)

    # -- the pipeline ------------------------------------------------------------------
    def handle(self, topic: str, payload: bytes) -> None:
        parsed = self.topics.parse(topic)
        if parsed is None or parsed.channel != "cmd":
            return
        self.submit(parsed.station, payload, via=topic)

    def submit(
        self,
        station: str | None,
        payload: bytes,
        reply: Reply | None = None,
        *,
        via: str | None = None,
    ) -> None:
        """Validate and apply one command (JSON, as on ``cmd``) for ``station`` (None:
        the line). The answer goes out on ``cmd/ack`` as always, and to ``reply`` when
        given: another protocol's command gets the same checks and the same answer.
        ``via`` says where it came from (a duplicate's answer names it); default the
        station's command topic."""
        if len(payload) > self.max_payload_bytes:
            self._answer(
                station,
                None,
                None,
                False,
                f"payload over {self.max_payload_bytes} bytes",
                reply=reply,
            )
            return
        try:
            command = COMMAND_ADAPTER.validate_json(payload)
        except ValidationError as exc:
            command_id, action = _peek(payload)
            self._answer(station, command_id, action, False, _explain(exc), reply=reply)
            return
        problem = self._misplaced(station, command)
        if problem is not None:
            self._answer(station, command.command_id, command.action, False, problem, reply=reply)
            return
        with self._lock:
            earlier = self._seen.get(command.command_id)
            if earlier is None:
                self._seen[command.command_id] = via or (
                    self.topics.line_command
                    if station is None
                    else self.topics.station(station, "cmd")
                )
                while len(self._seen) > REMEMBERED_COMMAND_IDS:
                    self._seen.popitem(last=False)
        if earlier is not None:
            self._answer(
                station,
                command.command_id,
                command.action,
                False,
                f"duplicate command_id {command.command_id!r}: already received on {earlier}; "
                "not applied again",
                reply=reply,
            )
            return
        self.schedule(lambda: self._apply(station, command, reply))

    def _misplaced(self, station: str | None, command: AnyCommand) -> str | None:
        if station is None and command.action in STATION_ACTIONS:
            return (
                f"{command.action} is a station command: publish it on "
                f"{self.topics.prefix}/{{station}}/cmd"
            )
        if station is not None and command.action in LINE_ACTIONS:
            return f"{command.action} is a line command: publish it on {self.topics.line_command}"
        if station is not None and station not in self.plant.by_id:
            return f"unknown station {station!r}; stations are {list(self.plant.by_id)}"
        return None

    def _apply(self, station: str | None, command: AnyCommand, reply: Reply | None) -> None:
        """Runs on the plant's thread."""
        try:
            reason = self._execute(station, command)
        except (SetpointError, ValueError) as exc:
            self._answer(station, command.command_id, command.action, False, str(exc), reply=reply)
            return
        self._answer(
            station, command.command_id, command.action, True, reason, station is None, reply
        )

    def _execute(self, station: str | None, command: AnyCommand) -> str:
        plant = self.plant
        if isinstance(command, SetSetpoint):
            assert station is not None  # noqa: S101 - checked by _misplaced
            plant.set_setpoint(station, command.setpoint, command.value)
            return f"{command.setpoint} set to {command.value:g}, from the next part on"
        if isinstance(command, StationStop):
            assert station is not None  # noqa: S101
            plant.stop_station(station)
            return "stopping after the part in hand"
        if isinstance(command, StationStart):
            assert station is not None  # noqa: S101
            plant.start_station(station)
            return "started"
        if isinstance(command, Maintenance):
            assert station is not None  # noqa: S101
            plant.request_maintenance(station)
            return "maintenance before the next part; tool wear resets"
        control = self.control
        if control is None:
            raise ValueError(f"{command.action} needs a live line; this plant runs in batch")
        if isinstance(command, Pause):
            control.pause()
            return "paused"
        if isinstance(command, Resume):
            control.resume()
            return "resumed"
        if isinstance(command, SetSpeed):
            control.set_speed(command.factor)
            in_force = control.speed_in_force
            if in_force < command.factor:
                return (
                    f"speed {command.factor:g}x asked; {in_force:g}x in force: the pipeline "
                    "carries no more, so the line paces itself and raises it while there is room"
                )
            return f"speed set to {command.factor:g}x real time"
        raise ValueError(f"unsupported action {command.action!r}")

    def _answer(
        self,
        station: str | None,
        command_id: str | None,
        action: str | None,
        accepted: bool,
        reason: str,
        line_speeds: bool = False,
        reply: Reply | None = None,
    ) -> None:
        """``line_speeds``: say the speeds asked and in force (a line command's ack)."""
        topic = self.topics.ack_for(station)
        control = self.control if line_speeds else None
        with self._lock:
            seq = self._seq.get(topic, 0)
            self._seq[topic] = seq + 1
            if accepted:
                self.accepted += 1
            else:
                self.rejected += 1
        ack = CommandAck(
            schema_version=SCHEMA_VERSION,
            ts_ms=time.time_ns() // 1_000_000,
            seq=seq,
            source=self.source,
            sim_time_s=float(self.plant.env.now),
            command_id=command_id,
            action=action,
            accepted=accepted,
            reason=reason[:500],
            speed_asked=control.speed if control is not None else None,
            speed_factor=control.speed_in_force if control is not None else None,
        )
        log.info(
            "command %s (%s) on %s: %s, %s",
            command_id,
            action,
            station or "line",
            "accepted" if accepted else "rejected",
            reason,
        )
        self.client.publish(topic, encode(ack), qos=self.qos)
        if reply is not None:
            reply(ack)


def _peek(payload: bytes) -> tuple[str | None, str | None]:
    """The command id and action of an invalid command, if they can be read."""
    try:
        document = json.loads(payload)
    except ValueError:
        return None, None
    if not isinstance(document, dict):
        return None, None
    command_id = document.get("command_id")
    action = document.get("action")
    return (
        command_id if isinstance(command_id, str) and command_id else None,
        action if isinstance(action, str) else None,
    )


def _explain(exc: ValidationError) -> str:
    # The action is the tag of the command union: pydantic puts it in the location
    # of the command's fields, where the sender never wrote it.
    return "invalid command: " + all_problems(
        exc, hidden=STATION_ACTIONS | LINE_ACTIONS, top_level=None
    )
