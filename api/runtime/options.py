"""What a stack runs with: the speed and seed of the simulated line, the broker
(embedded or a URL, logins, TLS, quality of service), what the twin admits, the
history and its backfill, live scoring and the first training, InfluxDB.
``StackOptions.from_settings`` reads them from the settings ``factory-twin up``
takes; a site hands each line's stack a copy with its own seed and history file
(``api.runtime.site``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from sensors.broker import DEFAULT_BROKER, BrokerKind
from twin.state.admission import DEFAULT_FUTURE_TOLERANCE_S, DEFAULT_MAX_STATIONS

if TYPE_CHECKING:
    from api.settings import Settings


@dataclass
class StackOptions:
    speed: float = 60.0
    seed: int = 42
    mqtt_url: str | None = None
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    # The embedded broker when mqtt_url is unset (sensors.broker).
    embedded_broker: BrokerKind = DEFAULT_BROKER
    topic_root: str = "factory"
    max_payload_bytes: int = 64 * 1024
    run_plant: bool = True
    # What the twin lets in (twin.state.admission): sim seconds a message may run ahead
    # of what the line's pace allows (None: no check), and the stations admitted
    # without a description or a line file (up --twin-only).
    future_tolerance_s: float | None = DEFAULT_FUTURE_TOLERANCE_S
    max_stations: int = DEFAULT_MAX_STATIONS
    # Wall seconds the twin's figures may trail the line before /alarms says so.
    lag_alarm_s: float = 10.0
    # A persistent ingest session: the broker queues the line's QoS 1 messages
    # while the twin is away (a broker restart, a twin restart) and delivers
    # them when it is back. Needs a client id that stays the same.
    persistent_session: bool = True
    ingest_client_id: str | None = None
    # MQTT 5 shared subscription group: ingests of one group split the stream.
    shared_group: str | None = None
    # Sparkplug B (sensors.sparkplug): the live line as an edge node too, its group
    # (None: {site}:{area}), and what the twin is fed from ("json" or "sparkplug").
    sparkplug: bool = False
    sparkplug_group: str | None = None
    source: str = "json"
    qos_telemetry: int = 0
    qos_events: int = 1
    qos_commands: int = 1
    mqtt_username: str | None = None
    mqtt_password: str | None = field(default=None, repr=False)
    plant_mqtt_username: str | None = None
    plant_mqtt_password: str | None = field(default=None, repr=False)
    mqtt_ca_file: str | None = None
    mqtt_cert_file: str | None = None
    mqtt_key_file: str | None = None
    # History: the embedded store is always on; None puts it in a temporary
    # directory that goes with the process (tests, throwaway runs).
    history_path: str | None = None
    history_retention_s: float = 7 * 24 * 3600.0
    backfill_s: float = 0.0
    kpi_period_s: float = 10.0
    # The sensor watch (models.anomaly.live_watch): line hours it learns from; 0 off.
    sensor_watch_hours: float = 24.0
    # Live scoring (models.live): wall seconds between micro-batches, 0 turns it
    # off; the model registry (None: api.settings.registry_path()).
    scoring_period_s: float = 5.0
    scoring_window_parts: int = 200
    models_path: str | None = None
    # With no active defect model, train the first models from the history in the
    # background once it is ready (api.first_training); needs live scoring on.
    first_training: bool = True
    # Line seconds between shadow forecasts of the learnt and the nominal line
    # (api.shadow); 0 turns them off.
    forecast_period_s: float = 3600.0
    # The live line as an OPC UA server too (sensors.opcua.server): anonymous when
    # opcua_anonymous (a demo), else the one login and a self-signed certificate.
    opcua: bool = False
    opcua_host: str = "127.0.0.1"
    opcua_port: int = 4840
    opcua_anonymous: bool = False
    opcua_username: str | None = None
    opcua_password: str | None = field(default=None, repr=False)
    opcua_cert_dir: str | None = None
    # A twin-only twin of a line that speaks OPC UA (sensors.opcua.source): its
    # server's endpoint, the map of its nodes, and a login where it needs one.
    opcua_source: str | None = None
    opcua_map: str | None = None
    opcua_source_username: str | None = None
    opcua_source_password: str | None = field(default=None, repr=False)
    influx_url: str | None = None
    influx_org: str | None = None
    influx_bucket: str | None = None
    influx_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> StackOptions:
        """The options ``factory-twin up`` runs a stack with: every option named as a
        setting takes its value (a secret unwrapped, a path as text); the rest come
        from settings in other units. A twin-only stack runs no plant, so it writes
        no backfill and trains nothing."""

        def plain(value: Any) -> Any:
            if isinstance(value, SecretStr):
                return value.get_secret_value()
            return str(value) if isinstance(value, Path) else value

        named = type(settings).model_fields
        same = {
            option.name: plain(getattr(settings, option.name))
            for option in fields(cls)
            if option.name in named
        }
        twin_only = settings.twin_only
        return cls(
            **{
                **same,
                "history_retention_s": settings.history_retention_days * 86400,
                "backfill_s": 0.0 if twin_only else settings.backfill_days * 86400,
                "first_training": settings.first_training and not twin_only,
                "run_plant": not twin_only,
                # 0 turns the check off: the stack takes None for that.
                "future_tolerance_s": settings.future_tolerance_s or None,
                "max_stations": settings.twin_max_stations,
                "opcua_anonymous": settings.demo,
            }
        )
