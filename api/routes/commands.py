"""Commands to the line, sent over MQTT as any client would send them.

The API is a client of the line like ``factory-twin cmd``: it publishes the
command on the station's (or the line's) ``cmd`` topic and waits for the
plant's ack on ``cmd/ack`` (docs/mqtt.md). The answer is the ack: accepted, or
rejected with the plant's reason (200 either way: the request was delivered);
504 when no ack came in time, 503 when no line is connected to this API or the
broker cannot be reached. Every route here needs the API token.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from api.deps import LineDep
from api.runtime.line import Stack
from api.security import MUTATING_RESPONSES, TokenDep
from twin.contract import CommandAck

router = APIRouter(
    tags=["commands"],
    dependencies=[TokenDep],
    responses={
        **MUTATING_RESPONSES,
        503: {"description": "No line is connected to this API, or the broker is unreachable"},
    },
)

DEFAULT_TIMEOUT_S = 5.0


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    timeout_s: float = Field(
        default=DEFAULT_TIMEOUT_S, ge=0.1, le=30, description="Seconds to wait for the ack."
    )


# One model per kind of action, told apart by ``action``: the OpenAPI schema
# then says which fields each action takes, as the validation does.
class SetSetpoint(_Command):
    """Change one setpoint of a station."""

    action: Literal["set_setpoint"]
    setpoint: str = Field(min_length=1, max_length=64, description="speed or temperature_c.")
    value: float = Field(allow_inf_nan=False)


class StationAction(_Command):
    """Stop, start or send a station to maintenance."""

    action: Literal["stop", "start", "maintenance"]


StationCommand = Annotated[SetSetpoint | StationAction, Field(discriminator="action")]


class SetSpeed(_Command):
    """Change the speed of the live simulation."""

    action: Literal["set_speed"]
    factor: float = Field(ge=0.1, le=1000, description="Simulated seconds per second.")


class LineAction(_Command):
    """Pause or resume the live simulation."""

    action: Literal["pause", "resume"]


LineCommand = Annotated[SetSpeed | LineAction, Field(discriminator="action")]


def send_to_line(
    stack: Stack | None, target: str | None, action: str, fields: dict[str, Any], timeout: float
) -> CommandAck:
    """Publish a command on ``stack``'s topics (a station's, or the line's when
    ``target`` is None) and wait for its ack; blocking, so run it in a thread."""
    from sensors.command_client import Command, send_commands
    from sensors.mqtt import MqttError

    if stack is None or stack.address is None:
        raise HTTPException(status_code=503, detail="no line is connected to this API")
    command = Command(target, action, fields)
    try:
        answers = send_commands(
            stack.address, stack.topics, [command], timeout=timeout, source="factory-twin-api"
        )
    except MqttError as error:
        raise HTTPException(status_code=503, detail=str(error)) from error
    ack = answers[command.command_id]
    if ack is None:
        raise HTTPException(
            status_code=504,
            detail=f"no answer from the line within {timeout:g} s (command {command.command_id})",
        )
    return CommandAck.model_validate(ack)


def notice_setpoint(
    stack: Stack | None, station: str, setpoint: str, value: float, ack: CommandAck | None
) -> None:
    """A setpoint the line accepted is in force from the ack's time: the sensor watch
    judges the readings it moves against it at once, not from the next part."""
    watch = getattr(stack, "sensor_watch", None)
    if watch is not None and ack is not None and ack.accepted:
        watch.notice_setpoint(station, setpoint, value, ack.sim_time_s)


def station_fields(body: SetSetpoint | StationAction) -> dict[str, Any]:
    """The command's fields beside ``action``: a setpoint's name and value."""
    if isinstance(body, SetSetpoint):
        return {"setpoint": body.setpoint, "value": body.value}
    return {}


@router.post(
    "/stations/{station_id}/commands",
    response_model=CommandAck,
    summary="Send a command to a station and return its ack",
    responses={504: {"description": "No ack in time"}, 404: {"description": "Unknown station"}},
)
async def station_command(
    line: LineDep,
    station_id: Annotated[str, Path(min_length=1, max_length=64, examples=["machining"])],
    body: StationCommand,
) -> CommandAck:
    known = line.twin.station_ids()
    if known and station_id not in known:
        raise HTTPException(
            status_code=404,
            detail=f"station_id {station_id!r} is unknown on line {line.id!r}; "
            f"known stations: {', '.join(known)}",
        )
    fields = station_fields(body)
    ack = await run_in_threadpool(
        send_to_line, line.runtime, station_id, body.action, fields, body.timeout_s
    )
    if isinstance(body, SetSetpoint):
        notice_setpoint(line.runtime, station_id, body.setpoint, body.value, ack)
    return ack


@router.post(
    "/line/commands",
    response_model=CommandAck,
    summary="Pause, resume or change the speed of the live line; returns its ack",
    responses={504: {"description": "No ack in time"}},
)
async def line_command(line: LineDep, body: LineCommand) -> CommandAck:
    fields = {"factor": body.factor} if isinstance(body, SetSpeed) else {}
    return await run_in_threadpool(
        send_to_line, line.runtime, None, body.action, fields, body.timeout_s
    )
