"""One line's stack: broker, plant, publisher, ingest and twin, started and
stopped in the right order.

Start order: history (and the backfill, which runs in the background from here
on: ``api.history_fill``), embedded broker (unless an external one is named),
the ingest (subscribed before anything is published, so it misses nothing),
the plant's publisher (birth message), then the live plant. Stop order is the
reverse: the backfill stops first (quietly; the next start fills the rest), and
the publisher flushes its QoS 1 messages and says goodbye (status offline)
before it disconnects.

``Stack.on_history_ready`` is the hook for work that needs the imported history
(the first model training): it fires once the backfill's points are on disk.
"""

from __future__ import annotations

import logging
import random
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from pydantic import BaseModel

from api.history_fill import BackfillStatus, HistoryFill, ReadyHook
from api.runtime.options import StackOptions
from api.runtime.protocol import Starts
from sensors.broker import EmbeddedBroker
from sensors.commands import CommandHandler
from sensors.ingest import Ingest
from sensors.mqtt import BrokerAddress, MqttError, connect, disconnect, new_client, parse_mqtt_url
from sensors.publisher import PlantPublisher, QosPolicy
from sensors.topics import LineTopics
from twin.config.line import LineConfig
from twin.config.site import LineId
from twin.history.points import HistoryWriter, Sink
from twin.history.recorder import HistoryRecorder
from twin.history.store import SqliteStore
from twin.learning.observer import LineLearner
from twin.sim.live import LiveRunner, realtime_environment
from twin.sim.plant import Plant
from twin.state.admission import Admission
from twin.state.line import TwinState
from twin.workers import Periodic

if TYPE_CHECKING:
    from api.first_training import FirstTraining, FirstTrainingResult
    from models.anomaly.live_watch import LiveSensorWatch
    from models.registry.store import ModelRegistry
    from models.scoring_loop import ScoringLoop
    from sensors.opcua.server import LineOpcUaServer
    from sensors.opcua.source import OpcUaSource
    from sensors.sparkplug.edge import EdgeNode
    from sensors.sparkplug.topics import SparkplugIds

log = logging.getLogger(__name__)
SUBSCRIBE_TIMEOUT_S = 10.0
# Unacknowledged live QoS 1 messages past which the background backfill waits.
LIVE_BACKLOG_HOLD = 2000
# Messages the line has published and the twin has not received (its lag in
# messages, from the heartbeat) at which its pressure on the line's pace reaches 1
# (twin.sim.live). Not the lag in seconds: slowing the line does not shorten a backlog
# of line seconds, and in wall seconds at the new speed it would even grow.
PACE_TWIN_LAG_MESSAGES = 2_000
# The first training waits for this much stored history. Set when it also fitted a
# drift detector (a few hundred telemetry windows per station), which is gone; kept,
# as nothing measured the defect models' own need.
FIRST_TRAINING_MIN_HISTORY_S = 6 * 3600.0


def bd_seq_file(history_path: str | None, ids: SparkplugIds) -> Path | None:
    """Where a line's edge node keeps the bdSeq it used last, so that the next start
    takes the one after: beside the line's history, named by its group and node
    (``sparkplug-{group}-{node}.bdseq``, any character but a letter, a digit, '.',
    '-' or '_' as '_'). None without a history file."""
    if history_path is None:
        return None
    name = re.sub(r"[^A-Za-z0-9._-]", "_", f"sparkplug-{ids.group}-{ids.node}") + ".bdseq"
    return Path(history_path).parent / name


def sensor_watch_file(history_path: str | None, site: str, area: str, line: str) -> Path | None:
    """Where the sensor watch keeps what it learnt: beside the history file (none for
    a history in a temporary directory: it goes with the process)."""
    if history_path is None:
        return None
    return Path(history_path).parent / f"sensor-watch-{site}-{area}-{line}.json"


def start_embedded_broker(options: StackOptions) -> EmbeddedBroker:
    """The embedded broker, started on the options' host and port. Its logins are
    the twin's and the plant's, when set (then no one else may connect); without
    them it is anonymous, for a local demo only."""
    logins: dict[str, str] = {}
    for user, password in (
        (options.mqtt_username, options.mqtt_password),
        (options.plant_mqtt_username, options.plant_mqtt_password),
    ):
        if user:
            logins[user] = password or ""
    broker = EmbeddedBroker(
        options.mqtt_host, options.mqtt_port, logins=logins, kind=options.embedded_broker
    )
    broker.start()
    return broker


@dataclass
class Stack(Starts):
    """Everything behind the API, for one line."""

    # None: the twin of a line it does not run and has no file for (``up
    # --twin-only`` without --config): ``line_ref`` names the line, and the twin
    # learns its stations from the birth message and the rest from the stream.
    config: LineConfig | None
    options: StackOptions = field(default_factory=StackOptions)
    # A site (api.runtime.site) runs all its lines in one SimPy environment: it
    # hands each line's stack its plant and the one runner that drives them all,
    # and starts and stops that runner itself. Unset, the stack makes its own.
    shared_plant: Plant | None = None
    shared_runner: LiveRunner | None = None
    # (site, area, line) of a line without a file; ignored when there is one.
    line_ref: tuple[str, str, str] | None = None

    def __post_init__(self) -> None:
        options = self.options
        if self.config is not None:
            line = self.config.line
            self.site, self.area, self.line_id = line.site, line.area, line.id
        elif self.line_ref is not None and not options.run_plant:
            self.site, self.area, self.line_id = self.line_ref
        else:
            raise ValueError(
                "a stack needs a line file, unless it is the twin of a line it does not "
                "run (twin only, with line_ref naming the line)"
            )
        self.topics = LineTopics(
            site=self.site, area=self.area, line=self.line_id, root=options.topic_root
        )
        self.twin = TwinState(
            site=self.site,
            area=self.area,
            line=self.line_id,
            # The simulated plant is the line file; a twin of a line it does not
            # run learns the stations from the line's birth message.
            stations=[station.id for station in self.config.stations]
            if options.run_plant and self.config is not None
            else None,
            admission=Admission(
                future_tolerance_s=options.future_tolerance_s, max_stations=options.max_stations
            ),
        )
        self.broker: EmbeddedBroker | None = None
        self.address: BrokerAddress | None = None
        self.ingest: Ingest | None = None
        self.plant: Plant | None = None
        self.publisher: PlantPublisher | None = None
        self.runner: LiveRunner | None = None
        self.commands: CommandHandler | None = None
        # The line as a Sparkplug B edge node (options.sparkplug; sensors.sparkplug).
        self.sparkplug: EdgeNode | None = None
        self.opcua: LineOpcUaServer | None = None
        self.opcua_source: OpcUaSource | None = None
        self.store: SqliteStore | None = None
        self.writer: HistoryWriter | None = None
        self.recorder: HistoryRecorder | None = None
        # The line learnt from the live stream (twin.learning): every accepted
        # message, as the recorder gets it.
        self.learner = LineLearner()
        hours = self.options.sensor_watch_hours
        if hours > 0:
            from models.anomaly.live_watch import LiveSensorWatch  # numpy: not before it is used
        self.sensor_watch: LiveSensorWatch | None = (
            LiveSensorWatch(
                self.line_id,
                sensor_watch_file(self.options.history_path, self.site, self.area, self.line_id),
                learn_hours=hours,
                # In the line's time order, as the twin's figures are.
                as_of=self.twin.as_of,
            )
            if hours > 0
            else None
        )
        self.history_fill: HistoryFill | None = None
        self._history_hooks: list[ReadyHook] = []
        # Set once history is ready (see on_history_ready).
        self.history_ready = threading.Event()
        # The backfill begins when this is set (defer_backfill clears it).
        self._backfill_go = threading.Event()
        self._backfill_go.set()
        self._kpi_sampler: Periodic | None = None
        self.scoring: ScoringLoop | None = None
        self.first_training: FirstTraining | None = None
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._clients: list[mqtt.Client] = []
        self.started = False

    @property
    def lines(self) -> Mapping[LineId, Stack]:
        """A line's stack is its own only line (``api.runtime.protocol.Runtime``)."""
        return {self.line_id: self}

    @property
    def first(self) -> Stack:
        return self

    def _open_history(self) -> None:
        options = self.options
        path = options.history_path
        if path is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="factory-twin-history-")
            path = str(Path(self._tempdir.name) / "history.sqlite3")
        self.store = SqliteStore(path, retention_ms=int(options.history_retention_s * 1000))
        from twin.history.influx import influx_sink

        # FACTORY_TWIN_INFLUX_* settings, else influxdb-client's INFLUXDB_V2_* variables.
        sink = influx_sink(
            self.store,
            url=options.influx_url,
            org=options.influx_org,
            bucket=options.influx_bucket,
            token=options.influx_token,
        )
        sinks: list[Sink] = [sink] if sink is not None else []
        if sink is not None:
            log.info("history goes to InfluxDB at %s, bucket %s, too", sink.url, sink.bucket)
        self.writer = HistoryWriter(self.store, sinks)
        self.recorder = HistoryRecorder(self.writer, self.site, self.area, self.line_id)

    def _plan_backfill(self) -> int:
        """Plan the backfill up to now (``_start`` starts it once the line is live); the
        live start (Unix ms): every backfilled point is at or before it, every live
        one after."""
        assert self.store is not None  # noqa: S101 - opened first
        assert self.writer is not None  # noqa: S101
        live_start_ms = int(time.time() * 1000)
        self.history_fill = HistoryFill(
            self.config,
            self.store,
            self.writer,
            self.topics,
            span_s=self.options.backfill_s,
            seed=self.options.seed + 1,
            live_start_ms=live_start_ms,
            hold=self._live_is_behind,
        )
        self.history_fill.on_ready(lambda status: self.history_ready.set())
        for hook in self._history_hooks:
            self.history_fill.on_ready(hook)
        self._history_hooks.clear()
        return live_start_ms

    def _live_is_behind(self) -> bool:
        """The live line's QoS 1 messages pile up unacknowledged: the backfill waits."""
        publisher = self.publisher
        return publisher is not None and publisher.pending() > LIVE_BACKLOG_HOLD

    def on_history_ready(self, hook: ReadyHook) -> None:
        """Call ``hook(status)`` once history is ready: the backfill's points are on
        disk, or it failed (``status.state == "failed"``, the error in it), or none
        was needed. Fires once, from the backfill's thread (at once if ready
        already; during ``start`` when there is nothing to fill); never if the
        stack stops first. A hook's error is logged, never raised."""
        if self.history_fill is None:
            self._history_hooks.append(hook)
        else:
            self.history_fill.on_ready(hook)

    def backfill_status(self) -> BackfillStatus | None:
        return self.history_fill.status() if self.history_fill is not None else None

    def _sample_kpis(self) -> None:
        """One KPI snapshot into history (every ``kpi_period_s``)."""
        if self.recorder is not None:
            self.recorder.record_kpis(self.twin.kpi_view(), self.config, int(time.time() * 1000))

    def _registry(self) -> ModelRegistry:
        from api.settings import registry_path
        from models.registry.store import ModelRegistry

        path = self.options.models_path
        return ModelRegistry(Path(path) if path else registry_path())

    def _start_scoring(self) -> None:
        """Live scoring with the registry's active models, loaded on the loop's thread
        (``scoring.loaded`` is set once they are). The loop watches the registry, so
        a version activated later (``factory-twin train``, ``POST /training``, the
        first training) scores within one period; without models it is off and the
        twin says why. Loading is checked: a model that cannot load is not run."""
        # Imported here: a stack without models starts without loading the ML stack.
        from models.scoring_loop import ScoringLoop, active_versions, load_scorer
        from twin.state.views import LiveScoringView

        options = self.options
        if options.scoring_period_s <= 0:
            self.twin.set_live_scoring(LiveScoringView(reason="turned off (scoring period 0)"))
            return
        if self.config is None:
            # Models are trained on a line file's simulated history (docs/models.md).
            self.twin.set_live_scoring(
                LiveScoringView(
                    reason="off: this twin has no line file to train models on; "
                    "factory-twin learn writes one from the line's history"
                )
            )
            return
        assert self.store is not None  # noqa: S101 - opened first
        store = self.store
        registry = self._registry()
        config = self.config
        stations = [station.id for station in config.stations]

        def reload(start_ms: int) -> tuple[Any, str | None]:
            return load_scorer(
                registry,
                store,
                config.line.id,
                stations,
                # The simulated plant stamps messages with the wall clock, so a simulated
                # second lasts 1/speed history seconds (models learn on simulated time),
                # at the speed in force: a paced line runs slower than it was asked.
                time_scale=self._history_s_per_line_s if options.run_plant else 1.0,
                window=options.scoring_window_parts,
                start_ms=start_ms,
            )

        start_ms = int(time.time() * 1000)

        def load() -> tuple[Any, str | None]:
            scorer, reason = reload(start_ms)
            if scorer is None:
                log.info("live scoring is off until a model is active: %s", reason)
                reason = f"{reason}: train one with factory-twin train or POST /training"
            return scorer, reason

        self.scoring = ScoringLoop(
            None,
            self.twin,
            options.scoring_period_s,
            watch=active_versions(registry),
            reload=reload,
            reason="loading the registry's models",
            start_ms=start_ms,
        )
        # The models load on the loop's thread: importing scikit-learn and reading the
        # files takes a second or two, and the API answers meanwhile.
        self.scoring.start(load)
        period = options.scoring_period_s
        log.info("live scoring every %g s from the registry at %s", period, registry.root)

    def _announce_first_training(self) -> None:
        loop = self.scoring
        if not self.options.first_training or loop is None:
            return
        try:
            if self._registry().active_version("defect") is not None:
                return
        except Exception:  # an unreadable registry is the scoring loop's to report
            log.debug("reading the registry failed", exc_info=True)
            return
        loop.set_training("training models: waiting for the line's history to be written")

    def start_first_training(self, end_ms: int | None = None) -> None:
        """The store holds the history the twin starts from, up to ``end_ms`` (default:
        now): called once history is ready (``on_history_ready``). With no active defect
        model in the
        registry and enough history, it starts the first training in the background
        (``api.first_training``); the twin shows "training models" meanwhile."""
        options, loop, store, config = self.options, self.scoring, self.store, self.config
        if not options.first_training or loop is None or store is None or config is None:
            return
        if self.first_training is not None:
            return
        registry = self._registry()
        if registry.active_version("defect") is not None:
            loop.set_training(None)  # a model came meanwhile (train, POST /training)
            return
        end_ms = int(time.time() * 1000) if end_ms is None else end_ms
        stored = store.time_range()
        held_s = 0.0 if stored is None else (min(end_ms, stored[1]) - stored[0]) / 1000.0
        if held_s < FIRST_TRAINING_MIN_HISTORY_S:
            why = (
                f"no first training: the history holds {held_s / 3600:.1f} h, it needs "
                f"{FIRST_TRAINING_MIN_HISTORY_S / 3600:.0f} h"
            )
            log.info(why)
            # Why scoring is off (no model in the registry, and what to run) stays first.
            before = getattr(loop, "reason", None)
            loop.set_training(None, reason=f"{before}; {why}" if before else why)
            return
        from api.first_training import FirstTraining, history_days

        assert self.writer is not None  # noqa: S101 - opened with the store
        self.writer.flush()  # the child reads the file: all of the history must be in it
        path = Path(str(store.path))
        training = FirstTraining(
            config,
            history_path=str(path),
            end_ms=end_ms,
            days=history_days(config, held_s),
            models_path=str(registry.root),
            work_dir=path.parent / "reports",
            seed=options.seed,
            on_progress=lambda stage: loop.set_training(f"training models: {stage}"),
            on_done=self._first_training_done,
        )
        loop.set_training("training models: starting")
        self.first_training = training
        try:
            training.start()
        except OSError as error:
            log.exception("the first training could not start")
            loop.set_training(None, reason=f"the first training could not start: {error}")

    def _first_training_done(self, result: FirstTrainingResult) -> None:
        loop = self.scoring
        if loop is None:
            return
        if result.defect_live:
            if loop.scorer is None:
                # The loop finds the new versions in the registry and clears "training".
                loop.set_training("training models: done, loading them")
            return
        loop.set_training(None, reason=result.message)

    def _start(self) -> None:
        self._open_history()
        live_start_ms = self._plan_backfill()
        self._start_live(live_start_ms)
        # The backfill last: its processes would slow the start of the live line.
        assert self.history_fill is not None  # noqa: S101 - planned above
        self.history_fill.start(self._backfill_go)

    def defer_backfill(self) -> None:
        """Call before ``start``: the backfill (planned at the start, so that it ends
        at the live start) begins only at ``release_backfill``. ``up`` releases it
        once the API is up, so that its processes do not slow the first view."""
        self._backfill_go.clear()

    def release_backfill(self) -> None:
        self._backfill_go.set()

    def _start_live(self, live_start_ms: int) -> None:
        self._start_scoring()
        # The first models train once the backfill's history is on disk (up to the
        # live start, where it ends); the line does not wait for it. Until then the
        # twin already says so, rather than "scoring off".
        self._announce_first_training()
        self.on_history_ready(lambda _status: self.start_first_training(live_start_ms))
        self._kpi_sampler = Periodic("kpi-sampler", self.options.kpi_period_s, self._sample_kpis)
        self._kpi_sampler.start()
        options = self.options
        if options.opcua_source:
            # A line that speaks OPC UA: no broker, the source feeds the ingest.
            self.ingest = self._follow_opcua_source(options)
            return
        if options.mqtt_url:
            self.address = parse_mqtt_url(options.mqtt_url).with_tls(
                options.mqtt_ca_file, options.mqtt_cert_file, options.mqtt_key_file
            )
        else:
            self.broker = start_embedded_broker(options)
            self.address = BrokerAddress(options.mqtt_host, options.mqtt_port)
        self.address = self.address.with_login(options.mqtt_username, options.mqtt_password)
        plant_address = self.address.with_login(
            options.plant_mqtt_username, options.plant_mqtt_password
        )

        nonce = uuid.uuid4().hex[:8]
        # A twin-only twin of a line has an id of its own: the twin in the plant's
        # process may be on the same broker, and a broker drops the older of two
        # clients with one id, so the two would drop each other in turn.
        role = "ingest" if options.run_plant else "ingest-twin-only"
        ingest_id = options.ingest_client_id or (
            f"factory-twin-{role}-{self.site}-{self.area}-{self.line_id}"
            if options.persistent_session
            else f"factory-twin-{role}-{nonce}"
        )
        self.ingest = self._connect_ingest(ingest_id, options)
        if not options.run_plant or self.config is None:
            return
        # Live history begins after the backfill's end (a millisecond at most; a
        # second at worst, should the clock be set back meanwhile).
        give_up = time.monotonic() + 1.0
        while time.time() * 1000 <= live_start_ms and time.monotonic() < give_up:
            time.sleep(0.001)
        if self.shared_plant is not None and self.shared_runner is not None:
            self.plant, runner = self.shared_plant, self.shared_runner
        else:
            env = realtime_environment(options.speed)
            self.plant = Plant(self.config, seed=options.seed, env=env)
            runner = LiveRunner(env, options.speed)
        plant_client = new_client(f"factory-twin-plant-{nonce}")
        self._clients.append(plant_client)
        self.publisher = PlantPublisher(
            self.plant,
            plant_client,
            self.topics,
            rng=random.Random(f"{options.seed}/sensors"),  # noqa: S311 - simulation noise
            qos=QosPolicy(
                telemetry=options.qos_telemetry,
                event=options.qos_events,
                state=options.qos_events,
                status=options.qos_events,
            ),
            live=runner,
        )
        self.publisher.attach()
        self.runner = runner
        # The twin is in this process: the line paces itself on its lag too.
        runner.add_pressure(self.twin_pressure)
        runner.add_pressure(self.in_flight_pressure)
        # Commands and their acks on a connection of their own: an ack must not wait
        # behind the plant's outbox (thousands of QoS 1 messages while the line paces
        # itself). MQTT keeps order within a topic of one connection, and every ack
        # goes out on this one: cmd/ack keeps its order (docs/mqtt.md).
        command_client = new_client(f"factory-twin-plant-cmd-{nonce}")
        self._clients.append(command_client)
        self.commands = CommandHandler(
            self.plant,
            command_client,
            self.topics,
            source=self.publisher.source,
            control=self.runner,
            schedule=self.runner.call_soon,
            max_payload_bytes=options.max_payload_bytes,
            qos=options.qos_commands,
        )
        command_client.on_connect = self.commands.on_connect
        command_client.on_message = self.commands.on_message
        command_client.on_subscribe = self.commands.on_subscribe
        if options.opcua:
            self.opcua = self._start_opcua(self.config, self.publisher, self.commands)
        connect(plant_client, plant_address)
        connect(command_client, plant_address)
        # A command sent the moment start() returns must reach the plant.
        if not self.commands.subscribed.wait(SUBSCRIBE_TIMEOUT_S):
            raise MqttError(
                f"the broker at {plant_address} did not confirm the plant's command subscriptions"
            )
        if options.sparkplug or options.source == "sparkplug":
            self.sparkplug = self._start_sparkplug(plant_address, nonce)
        self.publisher.announce("online")
        if self.shared_runner is None:
            self.runner.start()
        log.info(
            # The speed asked: the line paces itself on its pipeline and runs slower
            # while the broker or the twin cannot keep up (/healthz: speed_in_force).
            "line %s started, speed asked %gx real time (the pace follows the pipeline), "
            "publishing under %s",
            self.line_id,
            options.speed,
            self.topics.prefix,
        )

    def _follow_opcua_source(self, options: StackOptions) -> Ingest:
        """The twin of a line whose server speaks OPC UA: its map's nodes, subscribed,
        become the contract's messages and go through an ingest as MQTT ones do."""
        from sensors.opcua.source import OpcUaSource, client_security
        from sensors.opcua.source_map import load_map

        # Both checked by ``up``.
        assert options.opcua_source is not None  # noqa: S101
        assert options.opcua_map is not None  # noqa: S101
        line_map = load_map(options.opcua_map)
        # An ingest with no broker behind it: the source hands it each message.
        ingest = Ingest(
            self.twin,
            self.topics,
            new_client(f"factory-twin-opcua-{uuid.uuid4().hex[:8]}"),
            max_payload_bytes=options.max_payload_bytes,
            on_accepted=self._accepted,
        )
        # No heartbeats come from an OPC UA server: the twin holds nothing back for them.
        self.twin.whole_stream = False
        security = None
        if options.opcua_source_username:
            security = client_security(
                Path(options.opcua_cert_dir or "opcua"), self.site, self.area, self.line_id
            )
        source = OpcUaSource(
            options.opcua_source,
            line_map,
            self.topics,
            ingest.handle,
            username=options.opcua_source_username,
            password=options.opcua_source_password,
            security=security,
            application_uri=f"urn:factory-twin:twin:{self.site}:{self.area}:{self.line_id}",
            on_connected=lambda up: setattr(ingest, "connected", up),
        )
        source.start()
        self.opcua_source = source
        return ingest

    def _start_opcua(
        self, config: LineConfig, publisher: PlantPublisher, commands: CommandHandler
    ) -> LineOpcUaServer:
        # asyncua only when asked: it is not part of a plain start-up.
        from sensors.opcua.server import LineOpcUaServer, OpcUaLogin

        options = self.options
        login = None
        if not options.opcua_anonymous:
            # Checked by ``up`` before the stack starts.
            assert options.opcua_username is not None  # noqa: S101
            assert options.opcua_password is not None  # noqa: S101
            login = OpcUaLogin(
                options.opcua_username,
                options.opcua_password,
                Path(options.opcua_cert_dir or "opcua"),
            )
        server = LineOpcUaServer(
            config,
            host=options.opcua_host,
            port=options.opcua_port,
            submit=commands.submit,
            login=login,
        )
        server.start()
        publisher.add_tap(server.tap)
        return server

    def _start_sparkplug(self, address: BrokerAddress, nonce: str) -> EdgeNode:
        """The line as a Sparkplug B edge node on a connection of its own (its will is
        the NDEATH), born before the line publishes anything."""
        from sensors.sparkplug.edge import EdgeNode, devices_of

        assert self.publisher is not None  # noqa: S101 - made first
        assert self.runner is not None  # noqa: S101
        client = new_client(f"factory-twin-plant-spb-{nonce}")
        self._clients.append(client)
        node = EdgeNode(
            client,
            self._sparkplug_ids(),
            devices_of(self.publisher),
            source=self.publisher.source,
            commands=self.commands,
            bd_seq_file=bd_seq_file(self.options.history_path, self._sparkplug_ids()),
        )
        node.attach(self.publisher)
        node.start(address)
        # Its packets not yet written slow the line as the publisher's do.
        self.runner.add_pressure(node.pressure)
        log.info(
            "line %s is Sparkplug B edge node %s/%s", self.line_id, node.ids.group, node.ids.node
        )
        return node

    def _sparkplug_ids(self) -> SparkplugIds:
        from sensors.sparkplug.topics import SparkplugIds

        return SparkplugIds.for_line(
            self.site, self.area, self.line_id, group=self.options.sparkplug_group
        )

    def _history_s_per_line_s(self) -> float:
        """History (wall) seconds a line second lasts now: 1/the speed in force of the
        live line (the speed asked before it starts)."""
        runner = self.runner
        speed = runner.speed_in_force if runner is not None else self.options.speed
        return 1.0 / speed

    def twin_pressure(self) -> float:
        """The twin's lag behind the live line in messages, as a share of
        ``PACE_TWIN_LAG_MESSAGES``: a pressure probe of the line's pace (``twin.sim.live``)."""
        lag = self.twin.lag().lag_messages
        return 0.0 if lag is None else lag / PACE_TWIN_LAG_MESSAGES

    def in_flight_pressure(self) -> float:
        """The messages this process's plant handed to the broker and its ingest has
        neither received nor counted as lost, as a share of ``PACE_TWIN_LAG_MESSAGES``.

        The twin's lag is told by heartbeats, which queue behind the same backlog: a
        burst far faster than the ingest (a start at the highest speed, on a busy
        machine) piles up in the broker before any heartbeat shows it, and a broker
        that bounds what it holds per topic (the embedded rumqttd) then drops the
        oldest. Plant and ingest share this process, so their own counters tell the
        backlog as it grows; the twin's state still comes from its messages alone.
        """
        publisher, ingest = self.publisher, self.ingest
        if publisher is None or ingest is None or not ingest.track_sequences:
            return 0.0
        taken = ingest.stats.received + ingest.sequences.gaps
        return max(0, sum(publisher.published.values()) - taken) / PACE_TWIN_LAG_MESSAGES

    def _accepted(self, station: str | None, message: BaseModel) -> None:
        """Each message the ingest accepted: to the learner, then to history."""
        self.learner.observe(station, message)
        if self.sensor_watch is not None:
            try:
                self.sensor_watch.observe(station, message)
            except Exception:  # the watch never stops the ingest
                log.exception("the sensor watch of %s failed on a message", self.line_id)
        if self.recorder is not None:
            self.recorder.record(station, message)

    def _connect_ingest(self, client_id: str, options: StackOptions) -> Ingest:
        assert self.address is not None  # noqa: S101 - set before
        if options.shared_group:
            client_id = f"{client_id}-{uuid.uuid4().hex[:6]}"  # one group, many members
        client = new_client(
            client_id, persistent=options.persistent_session, mqtt5=bool(options.shared_group)
        )
        if options.source == "sparkplug":
            from sensors.sparkplug.consumer import SparkplugIngest

            # Sparkplug B sends at QoS 0, in one order per edge node (no shared group).
            ingest: Ingest = SparkplugIngest(
                self.twin,
                self.topics,
                client,
                self._sparkplug_ids(),
                max_payload_bytes=options.max_payload_bytes,
                on_accepted=self._accepted,
            )
        else:
            ingest = Ingest(
                self.twin,
                self.topics,
                client,
                max_payload_bytes=options.max_payload_bytes,
                on_accepted=self._accepted,
                shared_group=options.shared_group,
                # Subscribe at the highest QoS published, so nothing is downgraded.
                qos=max(options.qos_telemetry, options.qos_events),
                retained_from=self.address if options.persistent_session else None,
            )
        try:
            connect(client, self.address)
        except MqttError as exc:
            if not options.shared_group or "protocol" not in str(exc).lower():
                raise
            # An MQTT 3.1.1 broker (the embedded amqtt): no shared subscriptions.
            log.warning(
                "the broker at %s does not speak MQTT 5, so shared subscriptions are off: "
                "this ingest takes the whole stream",
                self.address,
            )
            return self._connect_ingest(client_id, replace(options, shared_group=None))
        self._clients.append(client)
        if not ingest.subscribed.wait(SUBSCRIBE_TIMEOUT_S):
            raise MqttError(f"the broker at {self.address} did not confirm the subscription")
        return ingest

    def stop_plant(self, flush_timeout: float = 1.5) -> None:
        """Stop the live plant and wait until its QoS 1 messages are acknowledged."""
        runner = self.runner
        if runner is not None:
            if runner is not self.shared_runner:  # a site stops its shared runner
                runner.stop()
            self.runner = None
        if self.publisher is not None and (runner is None or not runner.running):
            # The line stands still: a last heartbeat says that all it published up to
            # now is counted, so that the twin's watermark reaches its last events.
            self.publisher.heartbeat(force=True)
        if self.publisher is not None and not self.publisher.flush(flush_timeout):
            log.warning("%d QoS 1 messages were not acknowledged", self.publisher.pending())

    def stop(self) -> None:
        self.started = False
        if self.history_fill is not None:
            self.history_fill.stop()  # before the store closes under it
        self.stop_plant()
        if self.opcua is not None:
            self.opcua.stop()
            self.opcua = None
        if self.opcua_source is not None:
            self.opcua_source.stop()
            self.opcua_source = None
        if self.publisher is not None:
            try:
                self.publisher.announce("offline")
                self.publisher.flush(0.5)
            except Exception:  # best effort: the last will covers us
                log.debug("could not announce offline", exc_info=True)
            self.publisher = None
        if self.sparkplug is not None:
            # After the goodbye went out as NDATA: DDEATHs and the NDEATH.
            self.sparkplug.stop()
            self.sparkplug = None
        for client in reversed(self._clients):
            try:
                disconnect(client)
            except Exception:
                log.debug("disconnect failed", exc_info=True)
        self._clients.clear()
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
        if self.first_training is not None:
            self.first_training.stop()
            self.first_training = None
        if self.scoring is not None:
            self.scoring.stop()
            self.scoring = None
        if self._kpi_sampler is not None:
            self._kpi_sampler.stop()
            self._kpi_sampler = None
        if self.writer is not None:
            # Everything the ingest took goes to disk, and to InfluxDB if configured.
            self.writer.close()
            self.writer = None
            self.store = None
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None
