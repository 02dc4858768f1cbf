"""Liveness and data-quality counters."""

from __future__ import annotations

import platform
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

import twin as twin_package
from api.alarm_book import records_lost
from api.deps import (
    HistoryHealthDep,
    IngestHealthDep,
    JobsDep,
    OpcUaSourceHealthDep,
    PlantHealthDep,
    RuntimeDep,
    StreamStatsDep,
    TwinDep,
)
from api.runtime.protocol import Runtime
from twin.state.line import LineAnnouncement
from twin.state.views import LiveScoringView

router = APIRouter(tags=["health"])

# Stale data: three telemetry periods missed in a row, as a demanding operator
# expects to be told (one lost sample is noise, three are a line gone quiet), but
# never less than a few seconds of wall clock, so that a fast simulated line and
# a busy machine's scheduling jitter do not flap the status.
STALE_PERIODS = 3
STALE_MIN_S = 5.0
# A line that does not announce its sampling period: the contract's default.
DEFAULT_TELEMETRY_PERIOD_S = 10.0


def stale_after_s(announcement: LineAnnouncement) -> float:
    """Wall-clock seconds of silence after which the line's data is stale."""
    period = announcement.telemetry_period_s or DEFAULT_TELEMETRY_PERIOD_S
    speed = announcement.speed_factor or 1.0
    return max(STALE_MIN_S, STALE_PERIODS * period / speed)


def degraded_reasons(
    announcement: LineAnnouncement, ingest: IngestHealth | None, stale_s: float
) -> list[str]:
    """Why the twin's view of the line cannot be trusted as live, most serious first."""
    reasons: list[str] = []
    if ingest is not None and not ingest.connected:
        reasons.append("ingest: not connected to the broker")
    if announcement.status == "offline":
        reasons.append("line offline: its last will or goodbye says so")
    if announcement.paused:
        reasons.append("line paused on command: no data until it resumes")
        return reasons  # silence is expected while paused: not stale
    if ingest is None or announcement.status == "offline":
        return reasons
    age = ingest.last_message_age_s
    if age is None:
        reasons.append("no message from the line yet")
    elif age > stale_s:
        reasons.append(
            f"stale: the last message came {age:.1f} s ago; more than {stale_s:.1f} s "
            f"({STALE_PERIODS} expected telemetry periods, at least {STALE_MIN_S:g} s)"
        )
    return reasons


class MalformedCounts(BaseModel):
    too_large: int = 0
    not_json: int = 0
    unknown_version: int = 0
    invalid: int = 0


class IngestHealth(BaseModel):
    connected: bool
    received: int
    accepted: int
    malformed: MalformedCounts
    unknown_topic: int
    duplicates: int
    gaps: int
    gaps_by_channel: dict[str, int] = {}
    late: int
    last_error: dict[str, str] | None
    last_message_age_s: float | None
    rejected: dict[str, int] = Field(
        default={},
        description="Valid messages the twin left out, by reason: stale_source (an earlier "
        "run's retained messages, another publisher), future_time (a time the line cannot "
        "have reached), unknown_station, machine_out_of_range (docs/mqtt.md).",
    )
    sequence_streams: int | None = Field(
        default=None, description="(source, topic) streams whose sequence numbers are followed."
    )
    sparkplug: dict[str, Any] | None = Field(
        default=None,
        description="A twin fed over Sparkplug B (docs/sparkplug.md): the edge node's session "
        "(bd_seq, births, deaths, seq_gaps, rebirth_requests) and the payloads dropped, by kind.",
    )


class OpcUaSourceHealth(BaseModel):
    """The OPC UA server the twin follows, when it follows one (docs/opcua.md)."""

    endpoint: str
    connected: bool
    changes: int = Field(description="Data changes received from the server.")
    fed: int = Field(description="Messages made from them and accepted by the ingest.")
    refused: int = Field(description="Messages the ingest refused (see ingest.rejected).")
    reconnects: int
    counter_resets: int = Field(
        description="Counters that went back (a PLC restart): followed from their new value."
    )
    unknown_states: dict[str, int] = Field(
        description="State values the map does not know, by 'station: value'."
    )
    waiting_for_clock: int = Field(
        default=0,
        description="Values held until the map's clock node gives its first reading.",
    )
    dropped_before_clock: int = Field(
        default=0,
        description="Values dropped because the clock node gave no reading for too long.",
    )
    before_twin: dict[str, int] = Field(
        default={},
        description="With counters_from zero: each counter's value at the twin's first read, "
        "by 'station: counter', what the line made before the twin (not counted as its parts).",
    )
    last_error: str | None


class PlantHealth(BaseModel):
    """The simulated plant's publisher, when this process runs the plant."""

    source: str
    connected: bool | None = Field(default=None, description="Connected to the broker.")
    published: dict[str, int]
    dropped: dict[str, int] = Field(
        description="Messages not handed over, by 'kind: reason': 'outbox full' (the broker "
        "is connected but slow and the line could not wait) or 'broker unreachable' (no "
        "connection)."
    )
    outbox_pending: int
    outbox_size: int | None = Field(
        default=None, description="QoS 1 messages paho holds: unacknowledged or queued."
    )
    packets_queued: int | None = Field(
        default=None, description="Packets paho has not written yet (QoS 0 among them)."
    )
    outbox_limit: int
    pace_outbox: int | None = Field(
        default=None, description="Outbox size at which the live line slows down."
    )
    outbox_waits: int | None = Field(
        default=None, description="Times the live line waited for room in a full outbox."
    )
    outbox_waited_s: float | None = None
    speed_asked: float | None = Field(default=None, description="The speed asked for.")
    speed_in_force: float | None = Field(
        default=None, description="The speed in force: lower while the pipeline carries less."
    )
    pressure: float | None = Field(
        default=None, description="The pressure on the line's pace (1: it slows down)."
    )


class StoreHealth(BaseModel):
    path: str
    acknowledged: int
    queued: int
    batches: int
    retention_deleted: int
    not_finite: int
    last_error: str | None


class HistoryHealth(BaseModel):
    """The embedded store and the sinks (InfluxDB): see docs/storage.md."""

    points: int
    samples: int
    store: StoreHealth
    sinks: dict[str, dict[str, Any]]


class StreamHealth(BaseModel):
    """The live stream's hub (GET /stream)."""

    clients: int
    last_id: int
    buffered: int = Field(description="Events kept for Last-Event-ID resumes.")
    samples: int
    errors: int
    overflows: int = Field(description="Slow clients' queues that overflowed (coalesced).")
    resets: int


class BackfillHealth(BaseModel):
    """Imported history, written in the background while the line runs live."""

    state: Literal["off", "backfilling", "done", "failed", "stopped"]
    fraction: float = Field(ge=0, le=1, description="Share of the simulated span written.")
    simulated_days_done: float
    simulated_days_total: float = Field(
        description="Simulated days to write (0: history was up to date)."
    )
    wall_s: float | None = Field(description="Wall seconds the backfill has taken so far.")
    error: str | None = None


class Health(BaseModel):
    status: Literal["ok", "backfilling", "degraded"] = Field(
        description="degraded: see reasons; backfilling: live, and imported history still "
        "being written (see backfill); ok: neither."
    )
    reasons: list[str] = Field(
        default=[], description="Why the status is degraded; empty when it is not."
    )
    line_status: Literal["online", "offline", "unknown"]
    line_paused: bool | None = Field(
        description="True while the line is paused, as its retained status says; null: "
        "it does not say."
    )
    stale_after_s: float | None = Field(
        description="Wall-clock silence after which the line's data counts as stale: "
        f"{STALE_PERIODS} expected telemetry periods (the line's shortest sampling period "
        f"over its speed factor), at least {STALE_MIN_S:g} s. Null without an ingest."
    )
    twin_updates: int
    twin_held: int = Field(
        default=0,
        description="Events received beyond the twin's watermark (docs/mqtt.md), not counted yet.",
    )
    twin_held_forced: int = Field(
        default=0,
        description="Events applied beyond the watermark since the start because too many "
        "were held back (a stream that never completes): while it grows, the figures are "
        "not all as of one time.",
    )
    ingest: IngestHealth | None
    plant: PlantHealth | None = None
    opcua_source: OpcUaSourceHealth | None = None
    history: HistoryHealth | None = None
    models: LiveScoringView | None = None
    stream: StreamHealth | None = None
    jobs: dict[str, int] | None = Field(default=None, description="Background jobs by status.")
    backfill: BackfillHealth | None = None
    alarm_records_lost: int = Field(
        default=0,
        description="Alarm changes since the start that could not be written to the "
        "history file (a full disk, say): the alarms go on, their record has a gap.",
    )


class Version(BaseModel):
    name: str
    version: str
    python: str
    packages: dict[str, str | None] = Field(
        description="Versions of the libraries the answers depend on."
    )


@router.get(
    "/healthz",
    response_model=Health,
    summary="Health and message counters",
    description="200 while the ingest is connected to the broker, 503 (same body) when "
    "not. `status` is `degraded`, with `reasons`, also when the line is offline, paused, "
    "has sent nothing yet, or has been silent longer than `stale_after_s` (docs/api.md); "
    "`backfilling` while imported history is still being written (`backfill`).",
    responses={503: {"model": Health, "description": "Degraded: not connected to the broker"}},
)
def read_health(
    twin: TwinDep,
    ingest: IngestHealthDep,
    plant: PlantHealthDep,
    opcua_source: OpcUaSourceHealthDep,
    history: HistoryHealthDep,
    stream: StreamStatsDep,
    jobs: JobsDep,
    runtime: RuntimeDep,
    request: Request,
    response: Response,
) -> Health:
    details: dict[str, Any] | None = ingest.health() if ingest is not None else None
    ingest_health = IngestHealth.model_validate(details) if details is not None else None
    connected = ingest_health is None or ingest_health.connected
    if not connected:
        response.status_code = 503
    announcement = twin.announcement()
    stale_s = stale_after_s(announcement)
    reasons = degraded_reasons(announcement, ingest_health, stale_s)
    lost = records_lost(request.app.state)
    if lost:
        reasons.append(f"alarm records: {lost} changes could not be written to history")
    backfill = _backfill_health(runtime)
    backfilling = backfill is not None and backfill.state == "backfilling"
    lag = twin.lag()
    return Health(
        status="degraded" if reasons else "backfilling" if backfilling else "ok",
        reasons=reasons,
        line_status=announcement.status,
        line_paused=announcement.paused,
        stale_after_s=stale_s if ingest_health is not None else None,
        twin_updates=twin.updates,
        twin_held=lag.held,
        twin_held_forced=lag.held_forced,
        ingest=ingest_health,
        plant=PlantHealth.model_validate(plant.health()) if plant is not None else None,
        opcua_source=(
            OpcUaSourceHealth.model_validate(opcua_source.health())
            if opcua_source is not None
            else None
        ),
        history=HistoryHealth.model_validate(history.health()) if history is not None else None,
        models=twin.live_scoring(),  # its errors count failed micro-batches
        stream=StreamHealth.model_validate(stream) if stream is not None else None,
        jobs=jobs.counts(),
        backfill=backfill,
        alarm_records_lost=lost,
    )


def _backfill_health(runtime: Runtime | None) -> BackfillHealth | None:
    """The backfill of the stack (a site's: all its lines together), if any."""
    status = runtime.backfill_status() if runtime is not None else None
    if status is None:
        return None
    return BackfillHealth(
        state=status.state,
        fraction=status.fraction,
        simulated_days_done=status.simulated_s_done / 86400,
        simulated_days_total=status.simulated_s_total / 86400,
        wall_s=status.wall_s,
        error=status.error,
    )


PACKAGES = ("fastapi", "pydantic", "simpy", "paho-mqtt", "scikit-learn", "influxdb-client")


@router.get("/version", response_model=Version, summary="What is running")
def read_version() -> Version:
    from importlib import metadata

    def installed(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    return Version(
        name="factory-twin",
        version=twin_package.__version__,
        python=platform.python_version(),
        packages={package: installed(package) for package in PACKAGES},
    )
