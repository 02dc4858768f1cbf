"""Runtime settings: one ``Settings`` object, from flags, env and defaults.

Every setting has an environment variable with the ``FACTORY_TWIN_`` prefix
(``FACTORY_TWIN_API_PORT=8080``); command-line flags win over the environment.
The rooms below ``api`` never read these variables: they take the values as
arguments and keep plain defaults of their own (``registry_path`` resolves the
model registry's: the setting, else ``models.registry.store.default_registry_path``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from sensors.topics import DEFAULT_ROOT


def default_history_path() -> Path:
    """``$XDG_STATE_HOME/factory-twin/history.sqlite3`` (``~/.local/state`` by default)."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "factory-twin" / "history.sqlite3"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FACTORY_TWIN_", extra="ignore")

    config: Path | None = Field(
        default=None, description="Line config YAML; default line if unset."
    )
    site: Path | None = Field(
        default=None,
        description="Site config YAML: several lines and shared resources (docs/site.md); "
        "replaces config.",
    )
    speed: Annotated[float, Field(gt=0, le=100_000)] = 60.0
    seed: int = 42
    api_host: str = "127.0.0.1"
    api_port: Annotated[int, Field(ge=0, le=65535)] = 8000
    mqtt_url: str | None = Field(
        default=None, description="External broker, mqtt://host:port; embedded broker if unset."
    )
    mqtt_port: Annotated[int, Field(ge=0, le=65535)] = 1883
    embedded_broker: Literal["rumqttd", "amqtt"] = Field(
        default="rumqttd",
        description="The embedded broker: rumqttd (a child process; carries every shipped "
        "line at its default speed) or amqtt (pure Python, in this process; about a third "
        "of that); docs/scaling.md.",
    )
    topic_root: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")] = DEFAULT_ROOT
    max_payload_bytes: Annotated[int, Field(ge=256, le=16 * 1024 * 1024)] = 64 * 1024
    log_level: str = "info"
    mqtt_username: str | None = Field(default=None, description="The twin's MQTT user.")
    mqtt_password: SecretStr | None = Field(default=None, description="Never logged.")
    plant_mqtt_username: str | None = Field(
        default=None, description="The simulated plant's MQTT user; default: the twin's."
    )
    plant_mqtt_password: SecretStr | None = None
    mqtt_ca_file: Path | None = Field(default=None, description="CA to trust: turns on TLS.")
    mqtt_cert_file: Path | None = Field(default=None, description="Client certificate (TLS).")
    mqtt_key_file: Path | None = Field(default=None, description="Client key (TLS).")
    shared_group: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="MQTT 5 shared subscription group: ingests of one group split the stream.",
    )
    qos_telemetry: Literal[0, 1, 2] = Field(default=0, description="QoS of telemetry.")
    qos_events: Literal[0, 1, 2] = Field(
        default=1, description="QoS of events, states and the line status."
    )
    qos_commands: Literal[0, 1, 2] = Field(default=1, description="QoS of commands and acks.")
    persistent_session: bool = Field(
        default=True, description="Ask the broker to queue QoS 1 messages while the twin is away."
    )
    ingest_client_id: str | None = Field(
        default=None, description="MQTT client id of the ingest; default derived from the line."
    )
    sparkplug: bool = Field(
        default=False,
        description="Publish the live line as a Sparkplug B 3.0 edge node too, beside the JSON "
        "tree (docs/sparkplug.md).",
    )
    sparkplug_group: Annotated[str, Field(pattern=r"^[^/+#\s]+$")] | None = Field(
        default=None,
        description="The line's Sparkplug B group_id; default {site}:{area}.",
    )
    source: Literal["json", "sparkplug"] = Field(
        default="json",
        description="What the twin is fed from: the JSON tree, or the line's Sparkplug B edge "
        "node (a plant in this process then publishes Sparkplug B too).",
    )
    history_path: Path = Field(
        default_factory=lambda: default_history_path(),
        description="The embedded history store (SQLite file).",
    )
    history_retention_days: Annotated[float, Field(gt=0, le=3650)] = 7.0
    backfill_days: Annotated[float, Field(ge=0, le=365)] = Field(
        default=7.0,
        description="Simulated history written in the background as the line goes live; 0 turns "
        "it off.",
    )
    kpi_period_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=10.0, description="Wall seconds between KPI snapshots in history."
    )
    sensor_watch_hours: Annotated[float, Field(ge=0, le=24 * 30)] = Field(
        default=24.0,
        description="Line hours of the live stream the sensor watch learns from before it "
        "judges readings (docs/alarms.md); 0 turns it off.",
    )
    scoring_period_s: Annotated[float, Field(ge=0, le=3600)] = Field(
        default=5.0,
        description="Wall seconds between live-scoring micro-batches; 0 turns scoring off.",
    )
    scoring_window_parts: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        default=200, description="Live precision and recall are over the last this many parts."
    )
    models_path: Path | None = Field(
        default=None,
        description="The model registry; default $XDG_DATA_HOME/factory-twin/models.",
    )
    allow_anonymous_mqtt: bool = Field(
        default=False,
        description="Let the embedded broker take clients without a login outside --demo "
        "(anyone who can reach its port could then command the line; docs/security.md).",
    )
    twin_only: bool = Field(
        default=False,
        description="Run the twin of a line this process does not simulate (a real line, "
        "or a plant elsewhere on the broker): no plant, no backfill, no first training.",
    )
    opcua: bool = Field(
        default=False,
        description="Serve the live line as an OPC UA server too (docs/opcua.md): anonymous "
        "in a demo, otherwise Basic256Sha256 sign-and-encrypt and the OPC UA login.",
    )
    opcua_host: str = Field(default="127.0.0.1", description="OPC UA server bind address.")
    opcua_port: Annotated[int, Field(ge=0, le=65535)] = Field(
        default=4840, description="OPC UA server port."
    )
    opcua_username: str | None = Field(
        default=None, description="The OPC UA server's one login, needed outside a demo."
    )
    opcua_password: SecretStr | None = Field(default=None, description="Never logged.")
    opcua_source: Annotated[str, Field(pattern=r"^opc\.tcp://\S+$")] | None = Field(
        default=None,
        description="With twin_only: the OPC UA server of the line to mirror, opc.tcp://host:port "
        "(docs/opcua.md); needs opcua_map.",
    )
    opcua_map: Path | None = Field(
        default=None, description="Which node of the source's server is what, per station."
    )
    opcua_source_username: str | None = Field(
        default=None,
        description="The source server's login: then Basic256Sha256 sign and encrypt, with a "
        "client certificate made in opcua_cert_dir.",
    )
    opcua_source_password: SecretStr | None = Field(default=None, description="Never logged.")
    opcua_cert_dir: Path = Field(
        default_factory=lambda: default_history_path().parent / "opcua",
        description="Where the OPC UA server keeps its self-signed certificate "
        "(server-cert.der) and key (server-key.pem), made on first start.",
    )
    line: Annotated[str, Field(pattern=r"^[^/+#\s]+/[^/+#\s]+/[^/+#\s]+$")] | None = Field(
        default=None,
        description="site/area/line of a twin-only twin without a line file; unset, it "
        "takes the one line whose status the broker holds.",
    )
    line_wait_s: Annotated[float, Field(gt=0, le=86_400)] = Field(
        default=60.0,
        description="How long a twin-only twin without a line file waits for a line to "
        "announce itself on the broker.",
    )
    future_tolerance_s: Annotated[float, Field(ge=0, le=10_000_000)] = Field(
        default=600.0,
        description="Simulated seconds a message may run ahead of what the line's pace "
        "allows before the twin refuses it as from the future; 0 turns the check off.",
    )
    twin_max_stations: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=256,
        description="Stations admitted from messages alone, without a birth description "
        "or a line file (twin-only): more are counted and dropped.",
    )
    lag_alarm_s: Annotated[float, Field(gt=0, le=86_400)] = Field(
        default=10.0,
        description="Wall-clock seconds the twin's figures may trail its line (the lag in "
        "line seconds over the line's speed) before /alarms raises the lag alarm; it clears "
        "once the twin is back within it.",
    )
    first_training: bool = Field(
        default=True,
        description="With no active defect model, train the first models from the history "
        "in the background at start (a single line; docs/models.md).",
    )
    forecast_period_s: Annotated[float, Field(ge=0, le=7 * 86400)] = Field(
        default=3600.0,
        description="Line seconds between shadow forecasts: the learnt line and the line "
        "file, forked from the twin, forecast the next hour and the rest of the shift and are "
        "scored against what the line did (GET /forecasts); 0 turns them off.",
    )
    jobs_path: Path = Field(
        default_factory=lambda: default_history_path().parent / "jobs",
        description="Background jobs' directories (reports); default "
        "$XDG_STATE_HOME/factory-twin/jobs.",
    )
    jobs_max_running: Annotated[int, Field(ge=1, le=16)] = Field(
        default=1, description="Background jobs (training, optimizer, what-if) run at once."
    )
    jobs_timeout_s: Annotated[float, Field(gt=0, le=7 * 86400)] = Field(
        default=3600.0, description="A background job running longer is stopped."
    )
    api_token: SecretStr | None = Field(
        default=None,
        description="Bearer token of the mutating endpoints; required outside --demo.",
    )
    demo: bool = Field(
        default=False,
        description="Local demo: a random API token is made (and printed once) if none is set.",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS; empty: CORS off."
    )
    max_request_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = Field(
        default=64 * 1024, description="Larger request bodies get 413."
    )
    influx_url: str | None = Field(
        default=None, description="InfluxDB 2 URL; unset: no InfluxDB sink."
    )
    influx_org: str | None = None
    influx_bucket: str | None = None
    influx_token: SecretStr | None = Field(default=None, description="Never logged.")


def registry_path(settings: Settings | None = None) -> Path:
    """The model registry: the ``models_path`` setting (``FACTORY_TWIN_MODELS_PATH``,
    ``~`` expanded), else the registry's own default under ``$XDG_DATA_HOME``."""
    from models.registry.store import default_registry_path

    configured = (settings if settings is not None else Settings()).models_path
    return configured.expanduser() if configured is not None else default_registry_path()
