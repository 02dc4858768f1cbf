"""Commands to the line, sent over MQTT as any client would send them.

The API is a client of the line like ``factory-twin cmd``: it publishes the
command on the station's (or the line's) ``cmd`` topic and waits for the
plant's ack on ``cmd/ack`` (docs/mqtt.md). The answer is the ack: accepted, or
rejected with the plant's reason (200 either way: the request was delivered);
504 when no ack came in time. Every route here needs the API token.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool

from api.deps import TwinDep
from api.security import TokenDep
from twin.contract import CommandAck

router = APIRouter(tags=["commands"], dependencies=[TokenDep])

DEFAULT_TIMEOUT_S = 5.0


class StationCommand(BaseModel):
    """A command for one station."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["set_setpoint", "stop", "start", "maintenance"]
    setpoint: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="set_setpoint: speed or temperature_c.",
    )
    value: float | None = Field(default=None, allow_inf_nan=False, description="set_setpoint.")
    timeout_s: float = Field(default=DEFAULT_TIMEOUT_S, gt=0, le=30)

    @model_validator(mode="after")
    def _fields_of_the_action(self) -> StationCommand:
        if self.action == "set_setpoint" and (self.setpoint is None or self.value is None):
            raise ValueError("set_setpoint needs setpoint and value")
        if self.action != "set_setpoint" and (self.setpoint, self.value) != (None, None):
            raise ValueError(f"{self.action} takes no setpoint or value")
        return self


class LineCommand(BaseModel):
    """A command for the whole line (the live simulation)."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["pause", "resume", "set_speed"]
    factor: float | None = Field(
        default=None, ge=0.1, le=1000, description="set_speed: simulated seconds per second."
    )
    timeout_s: float = Field(default=DEFAULT_TIMEOUT_S, gt=0, le=30)

    @model_validator(mode="after")
    def _fields_of_the_action(self) -> LineCommand:
        if (self.action == "set_speed") != (self.factor is not None):
            raise ValueError("set_speed needs factor; pause and resume take none")
        return self


def _send(
    request: Request, target: str | None, action: str, fields: dict[str, Any], timeout: float
) -> CommandAck:
    from sensors.command_client import Command, send_commands
    from sensors.mqtt import MqttError

    stack = getattr(request.app.state, "stack", None)
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


@router.post(
    "/stations/{station_id}/commands",
    response_model=CommandAck,
    summary="Send a command to a station and return its ack",
    responses={504: {"description": "No ack in time"}, 404: {"description": "Unknown station"}},
)
async def station_command(
    request: Request,
    twin: TwinDep,
    station_id: Annotated[str, Path(min_length=1, max_length=64)],
    body: StationCommand,
) -> CommandAck:
    known = {station.id for station in twin.view().stations}
    if known and station_id not in known:
        raise HTTPException(status_code=404, detail=f"unknown station {station_id!r}")
    fields: dict[str, Any] = {}
    if body.action == "set_setpoint":
        fields = {"setpoint": body.setpoint, "value": body.value}
    return await run_in_threadpool(_send, request, station_id, body.action, fields, body.timeout_s)


@router.post(
    "/line/commands",
    response_model=CommandAck,
    summary="Pause, resume or change the speed of the live line; returns its ack",
    responses={504: {"description": "No ack in time"}},
)
async def line_command(request: Request, body: LineCommand) -> CommandAck:
    fields = {"factor": body.factor} if body.action == "set_speed" else {}
    return await run_in_threadpool(_send, request, None, body.action, fields, body.timeout_s)
