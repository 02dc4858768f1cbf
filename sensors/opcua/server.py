"""The plant as an OPC UA server: the live line for UaExpert, Ignition, Node-RED, Kepware.

The server hears every message the plant's publisher sends (``PlantPublisher.add_tap``),
so it shows what the MQTT tree shows, sensor noise and faults included, and never
the simulator's memory. Its address space follows ISA-95 (site, area, line,
stations) and borrows the OPC UA for Machinery building blocks where they fit:
an ``Identification`` object (OPC 40001-1 MachineIdentification), the
``MachineryItemState`` of each station, and the PackML state beside our detailed
one. Sensors and setpoints are AnalogItems with their engineering units and
ranges. The node map is in ``sensors.opcua.nodes`` and docs/opcua.md.

Commands are methods. Each builds the same JSON command the ``cmd`` topic takes
and hands it to the plant's command handler (``CommandHandler.submit``), so it is
checked and answered exactly as over MQTT; the method returns the answer
(``Accepted``, ``Reason``), and the answer goes out on ``cmd/ack`` too.

Security: a demo serves anonymous clients without encryption. Otherwise the only
endpoint is Basic256Sha256 sign-and-encrypt with a self-signed certificate made
on first start (docs/opcua.md says where), and a username and password.

asyncua runs on its own thread and event loop. The plant's thread only appends
to a queue and wakes the loop once per burst: it never waits for OPC UA.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from asyncua import Server, ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.user_managers import UserManager
from cryptography.x509.oid import ExtendedKeyUsageOID

from sensors.opcua.nodes import (
    COUNTERS,
    MACHINERY_ITEM_STATE,
    NAMESPACE_URI,
    SENSOR_BROWSE_NAMES,
    SETPOINT_BROWSE_NAMES,
    UNECE_NAMESPACE,
    UNITS,
    LinePath,
    changeable_setpoints,
)
from twin.config.line import SENSOR_NAMES, LineConfig
from twin.contract import PACKML_STATE, SCHEMA_VERSION, SENSOR_RANGES, CommandAck

log = logging.getLogger(__name__)
# asyncua logs every publish at INFO: a line of log per data change.
logging.getLogger("asyncua").setLevel(logging.WARNING)

# How long a method waits for the line's answer (a paused line still answers).
COMMAND_TIMEOUT_S = 10.0
START_TIMEOUT_S = 60.0
# SimTime follows the line's messages, written at most once per this many line seconds.
SIM_TIME_STEP_S = 1.0
CERT_FILE = "server-cert.der"
KEY_FILE = "server-key.pem"

Submit = Callable[..., None]  # CommandHandler.submit(station, payload, reply, via=...)


class OpcUaError(RuntimeError):
    """The OPC UA server could not start (a port in use, a bad certificate)."""


@dataclass(frozen=True, slots=True)
class OpcUaLogin:
    """Outside a demo: the one login the server takes, and where its certificate is."""

    username: str
    password: str
    cert_dir: Path

    @property
    def cert_file(self) -> Path:
        return self.cert_dir / CERT_FILE

    @property
    def key_file(self) -> Path:
        return self.cert_dir / KEY_FILE


class _OneLogin(UserManager):  # type: ignore[misc]  # asyncua read as untyped
    def __init__(self, username: str, password: str) -> None:
        self._username = username.encode()
        self._password = password.encode()

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        given_user = (username or "").encode()
        given_password = (password or "").encode()
        # Both compared in full, always: the time taken tells nothing.
        good_user = hmac.compare_digest(given_user, self._username)
        good_password = hmac.compare_digest(given_password, self._password)
        if good_user and good_password:
            return User(role=UserRole.User, name=username)
        log.warning("OPC UA login refused for user %r", username)
        return None


def _value(value: Any, variant: ua.VariantType) -> ua.DataValue:
    now = datetime.now(UTC)
    return ua.DataValue(ua.Variant(value, variant), SourceTimestamp=now, ServerTimestamp=now)


class LineOpcUaServer:
    """Serve one line over OPC UA while its plant runs (``start``, ``tap``, ``stop``)."""

    def __init__(
        self,
        config: LineConfig,
        *,
        host: str = "127.0.0.1",
        port: int = 4840,
        submit: Submit | None = None,
        login: OpcUaLogin | None = None,
    ) -> None:
        self.config = config
        self.host = host
        self.port = port
        self.submit = submit
        self.login = login
        info = config.line
        self.path = LinePath(info.site, info.area, info.id)
        self.application_uri = f"urn:factory-twin:{info.site}:{info.area}:{info.id}"
        self.namespace_index: int | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._stopping: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None
        self._queue: deque[tuple[ua.NodeId, ua.DataValue]] = deque()
        self._scheduled = False
        # The counters the server keeps from the events it hears.
        self._counts: dict[tuple[str, str], int] = {}
        self._node: dict[tuple[str | None, str], ua.NodeId] = {}
        self._setpoints = {station.id: changeable_setpoints(station) for station in config.stations}
        self.updates = 0
        # Variables in the address space (the benchmark's bare server gets as many).
        self.variables = 0
        self._sim_time_written = float("-inf")

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://{self.host}:{self.port}/factory-twin/"

    # -- life ----------------------------------------------------------------------------
    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        self._thread = threading.Thread(target=self._run, name="opcua-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise OpcUaError(f"the OPC UA server on {self.endpoint} did not start in {timeout_s} s")
        if self._failure is not None:
            raise OpcUaError(
                f"the OPC UA server on {self.endpoint} could not start: {self._failure}"
            ) from self._failure
        log.info(
            "OPC UA server %s (%s)",
            self.endpoint,
            "anonymous, no encryption: a demo"
            if self.login is None
            else f"Basic256Sha256 sign and encrypt, certificate {self.login.cert_file}",
        )

    def stop(self) -> None:
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop ended meanwhile
                loop.call_soon_threadsafe(stopping.set)
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by start(), or logged once running
            if not self._ready.is_set():
                self._failure = exc
                self._ready.set()
            else:
                log.exception("the OPC UA server stopped")

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        login = self.login
        server = Server(
            user_manager=_OneLogin(login.username, login.password) if login is not None else None
        )
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name(f"factory-twin line {self.path.line_path}")
        await server.set_application_uri(self.application_uri)
        if login is None:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
            server.set_identity_tokens([ua.AnonymousIdentityToken])
        else:
            login.cert_dir.mkdir(parents=True, exist_ok=True)
            await setup_self_signed_certificate(
                login.key_file,
                login.cert_file,
                self.application_uri,
                socket.gethostname(),
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
                {
                    "commonName": f"factory-twin {self.path.line_path}",
                    "organizationName": "factory-twin",
                },
            )
            await server.load_certificate(str(login.cert_file))
            await server.load_private_key(str(login.key_file))
            server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
            server.set_identity_tokens([ua.UserNameIdentityToken])
        self.namespace_index = await server.register_namespace(NAMESPACE_URI)
        await self._build(server, self.namespace_index)
        async with server:
            self._ready.set()
            drain = asyncio.create_task(self._drain(server))
            await self._stopping.wait()
            drain.cancel()

    # -- the address space ---------------------------------------------------------------
    def _id(self, path: str) -> ua.NodeId:
        assert self.namespace_index is not None  # noqa: S101 - set before the build
        return ua.NodeId(path, self.namespace_index)

    def _keep(self, path: str, node: Any) -> Any:
        """Keep a variable's node id by (station or None for the line, its path below
        that): ``tap`` looks ids up per message, never builds them."""
        below = path[len(self.path.line_path) + 1 :]
        head, _, rest = below.partition("/")
        key = (head, rest) if rest and head in self._setpoints else (None, below)
        self._node[key] = node.nodeid
        self.variables += 1
        return node

    async def _object(self, parent: Any, path: str, name: str) -> Any:
        return await parent.add_object(self._id(path), ua.QualifiedName(name, self.namespace_index))

    async def _variable(
        self, parent: Any, path: str, name: str, value: Any, variant: ua.VariantType
    ) -> Any:
        return self._keep(
            path,
            await parent.add_variable(
                self._id(path),
                ua.QualifiedName(name, self.namespace_index),
                value,
                varianttype=variant,
            ),
        )

    async def _analog(
        self,
        parent: Any,
        path: str,
        name: str,
        value: float,
        unit: str,
        low: float,
        high: float,
        *,
        waiting: bool = False,
    ) -> Any:
        node = await parent.add_variable(
            self._id(path),
            ua.QualifiedName(name, self.namespace_index),
            value,
            varianttype=ua.VariantType.Double,
            datatype=ua.NodeId(ua.ObjectIds.Double),
        )
        if waiting:
            # No reading yet: a client sees "waiting for initial data", not a 0.
            await node.write_value(
                ua.DataValue(
                    ua.Variant(None, ua.VariantType.Null),
                    StatusCode=ua.StatusCode(ua.StatusCodes.BadWaitingForInitialData),
                )
            )
        spec = UNITS[unit]
        await node.add_property(
            self._id(f"{path}/EngineeringUnits"),
            "EngineeringUnits",
            ua.EUInformation(
                NamespaceUri=UNECE_NAMESPACE,
                UnitId=spec.unit_id,
                DisplayName=ua.LocalizedText(spec.symbol),
                Description=ua.LocalizedText(spec.description),
            ),
        )
        await node.add_property(
            self._id(f"{path}/EURange"), "EURange", ua.Range(Low=low, High=high)
        )
        return self._keep(path, node)

    async def _method(
        self,
        parent: Any,
        path: str,
        name: str,
        station: str | None,
        action: str,
        inputs: Sequence[tuple[str, ua.VariantType]] = (),
    ) -> None:
        async def call(parent_id: ua.NodeId, *args: ua.Variant) -> list[ua.Variant]:
            body: dict[str, Any] = {"action": action}
            for (arg_name, _), arg in zip(inputs, args, strict=False):
                body[_FIELDS[arg_name]] = arg.Value
            return await self._command(station, body, f"OPC UA method {path}")

        arguments = []
        for arg_name, variant in inputs:
            argument = ua.Argument()
            argument.Name = arg_name
            argument.DataType = ua.NodeId(variant.value)
            argument.ValueRank = -1
            arguments.append(argument)
        outputs = []
        for out_name, variant in (
            ("Accepted", ua.VariantType.Boolean),
            ("Reason", ua.VariantType.String),
        ):
            argument = ua.Argument()
            argument.Name = out_name
            argument.DataType = ua.NodeId(variant.value)
            argument.ValueRank = -1
            outputs.append(argument)
        await parent.add_method(
            self._id(path), ua.QualifiedName(name, self.namespace_index), call, arguments, outputs
        )

    async def _build(self, server: Server, idx: int) -> None:
        config, path = self.config, self.path
        info = config.line
        objects = server.nodes.objects
        site = await self._object(objects, info.site, info.site)
        area = await self._object(site, f"{info.site}/{info.area}", info.area)
        line = await self._object(area, path.line_path, info.id)
        await self._variable(
            line, path.line_node("Name"), "Name", info.name or info.id, ua.VariantType.String
        )
        await self._variable(
            line, path.line_node("Status"), "Status", "offline", ua.VariantType.String
        )
        await self._variable(
            line, path.line_node("Paused"), "Paused", False, ua.VariantType.Boolean
        )
        await self._variable(
            line, path.line_node("SpeedFactor"), "SpeedFactor", 1.0, ua.VariantType.Double
        )
        await self._variable(line, path.line_node("SimTime"), "SimTime", 0.0, ua.VariantType.Double)
        await self._method(line, path.line_node("Pause"), "Pause", None, "pause")
        await self._method(line, path.line_node("Resume"), "Resume", None, "resume")
        await self._method(
            line,
            path.line_node("SetSpeed"),
            "SetSpeed",
            None,
            "set_speed",
            [("Factor", ua.VariantType.Double)],
        )
        for spec in config.stations:
            await self._build_station(line, spec)

    async def _build_station(self, line: Any, spec: Any) -> None:
        path, station_id = self.path, spec.id
        node = await self._object(line, path.station(station_id), station_id)

        def at(*names: str) -> str:
            return path.station_node(station_id, *names)

        identification = await self._object(node, at("Identification"), "Identification")
        for name, value in (
            ("Manufacturer", "factory-twin (simulated plant)"),
            ("Model", spec.name or station_id),
            ("ProductInstanceUri", f"{self.application_uri}:{station_id}"),
            ("SerialNumber", station_id),
        ):
            await self._variable(
                identification, at("Identification", name), name, value, ua.VariantType.String
            )
        await self._variable(
            identification,
            at("Identification", "Machines"),
            "Machines",
            spec.machines,
            ua.VariantType.Int32,
        )
        for name in ("State", "PackMLState", "MachineryItemState", "StateReason"):
            await self._variable(node, at(name), name, "", ua.VariantType.String)
        await self._variable(node, at("StateSince"), "StateSince", 0.0, ua.VariantType.Double)
        for name in ("InputBufferLevel", "OutputBufferLevel"):
            await self._variable(node, at(name), name, 0, ua.VariantType.Int32)
        counters = await self._object(node, at("Counters"), "Counters")
        for counter in COUNTERS:
            await self._variable(
                counters, at("Counters", counter), counter, 0, ua.VariantType.UInt64
            )
        sensors = await self._object(node, at("Sensors"), "Sensors")
        for name in SENSOR_NAMES:
            if getattr(spec.sensors, name) is None:
                continue
            low, high = SENSOR_RANGES[name]
            browse = SENSOR_BROWSE_NAMES[name]
            await self._analog(
                sensors, at("Sensors", browse), browse, 0.0, name, low, high, waiting=True
            )
        setpoints = await self._object(node, at("Setpoints"), "Setpoints")
        for name, setpoint in self._setpoints[station_id].items():
            browse = SETPOINT_BROWSE_NAMES[name]
            unit = "speed" if name == "speed" else name
            await self._analog(
                setpoints,
                at("Setpoints", browse),
                browse,
                setpoint.default,
                unit,
                setpoint.min,
                setpoint.max,
            )
        await self._method(
            node,
            at("SetSetpoint"),
            "SetSetpoint",
            station_id,
            "set_setpoint",
            [("Name", ua.VariantType.String), ("Value", ua.VariantType.Double)],
        )
        await self._method(node, at("Stop"), "Stop", station_id, "stop")
        await self._method(node, at("Start"), "Start", station_id, "start")
        await self._method(node, at("Maintenance"), "Maintenance", station_id, "maintenance")

    # -- commands ------------------------------------------------------------------------
    async def _command(
        self, station: str | None, body: dict[str, Any], via: str
    ) -> list[ua.Variant]:
        def answer(accepted: bool, reason: str) -> list[ua.Variant]:
            return [
                ua.Variant(accepted, ua.VariantType.Boolean),
                ua.Variant(reason, ua.VariantType.String),
            ]

        if self.submit is None:
            return answer(False, "this OPC UA server has no line to command")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[CommandAck] = loop.create_future()

        def settle(ack: CommandAck) -> None:
            if not future.done():
                future.set_result(ack)

        def reply(ack: CommandAck) -> None:
            loop.call_soon_threadsafe(settle, ack)

        body.update(
            schema_version=SCHEMA_VERSION,
            ts_ms=time.time_ns() // 1_000_000,
            source=f"opcua-{self.port}",
            command_id=f"opcua-{uuid.uuid4().hex}",
        )
        self.submit(station, orjson.dumps(body), reply, via=via)
        try:
            ack = await asyncio.wait_for(future, COMMAND_TIMEOUT_S)
        except TimeoutError:
            return answer(False, f"no answer from the line within {COMMAND_TIMEOUT_S:g} s")
        if ack.accepted and station is not None and body["action"] == "set_setpoint":
            browse = SETPOINT_BROWSE_NAMES.get(str(body.get("setpoint")))
            node = self._node.get((station, f"Setpoints/{browse}")) if browse else None
            if node is not None:
                self._queue.append((node, _value(float(body["value"]), ua.VariantType.Double)))
                self._kick()
        return answer(ack.accepted, ack.reason)

    # -- values from the plant -----------------------------------------------------------
    def tap(self, station: str | None, channel: str, message: dict[str, Any]) -> None:
        """A message the plant published (``PlantPublisher.add_tap``), on its thread.

        Node ids are looked up, never built, and one timestamp serves the message:
        this runs for every message the line sends."""
        if not self._ready.is_set():
            return
        put = self._queue.append
        node = self._node
        now = datetime.now(UTC)
        double, string = ua.VariantType.Double, ua.VariantType.String

        def value(content: Any, variant: ua.VariantType) -> ua.DataValue:
            return ua.DataValue(
                ua.Variant(content, variant), SourceTimestamp=now, ServerTimestamp=now
            )

        if station is None:
            if channel == "status":
                put((node[(None, "Status")], value(message["status"], string)))
                if message.get("paused") is not None:
                    put(
                        (
                            node[(None, "Paused")],
                            value(bool(message["paused"]), ua.VariantType.Boolean),
                        )
                    )
                if message.get("speed_factor") is not None:
                    put(
                        (node[(None, "SpeedFactor")], value(float(message["speed_factor"]), double))
                    )
                if message.get("sim_time_s") is not None:
                    put((node[(None, "SimTime")], value(float(message["sim_time_s"]), double)))
            self._kick()
            return
        sim_time = message.get("sim_time_s")
        if sim_time is not None and sim_time >= self._sim_time_written + SIM_TIME_STEP_S:
            self._sim_time_written = sim_time
            put((node[(None, "SimTime")], value(float(sim_time), double)))
        if channel == "telemetry":
            for name, path in _SENSOR_PATHS.items():
                reading = message.get(name)
                if reading is not None:
                    put((node[(station, path)], value(float(reading), double)))
        elif channel == "state":
            state = message["state"]
            put((node[(station, "State")], value(state, string)))
            put((node[(station, "PackMLState")], value(PACKML_STATE[state], string)))
            put((node[(station, "MachineryItemState")], value(MACHINERY_ITEM_STATE[state], string)))
            put((node[(station, "StateReason")], value(message["reason"], string)))
            put((node[(station, "StateSince")], value(float(message["since_sim_time_s"]), double)))
        elif channel == "event":
            kind = message.get("event")
            if kind == "part_started":
                self._count(station, "PartsStarted", value)
                level = message.get("input_buffer_level")
                if level is not None:
                    put(
                        (
                            node[(station, "InputBufferLevel")],
                            value(int(level), ua.VariantType.Int32),
                        )
                    )
            elif kind == "part_finished":
                self._count(station, _RESULT_COUNTER[message["result"]], value)
                if message.get("exits_line"):
                    self._count(station, "PartsShipped", value)
                level = message.get("output_buffer_level")
                if level is not None:
                    put(
                        (
                            node[(station, "OutputBufferLevel")],
                            value(int(level), ua.VariantType.Int32),
                        )
                    )
        self._kick()

    def _count(self, station: str, counter: str, value: Callable[..., ua.DataValue]) -> None:
        key = (station, counter)
        count = self._counts[key] = self._counts.get(key, 0) + 1
        node = self._node[(station, _COUNTER_PATHS[counter])]
        self._queue.append((node, value(count, ua.VariantType.UInt64)))

    def _kick(self) -> None:
        if self._scheduled or not self._queue:
            return
        self._scheduled = True
        loop, wake = self._loop, self._wake
        if loop is None or wake is None:
            return
        try:
            loop.call_soon_threadsafe(wake.set)
        except RuntimeError:  # stopping
            self._queue.clear()

    async def _drain(self, server: Server) -> None:
        wake = self._wake
        assert wake is not None  # noqa: S101
        write = server.iserver.aspace.write_attribute_value
        value_attribute = ua.AttributeIds.Value
        queue = self._queue
        while True:
            await wake.wait()
            wake.clear()
            # Cleared before the queue is read: what the plant adds from now on
            # wakes the loop again.
            self._scheduled = False
            while queue:
                node, value = queue.popleft()
                status = await write(node, value_attribute, value)
                if not status.is_good():
                    log.debug("OPC UA write to %s: %s", node, status)
                self.updates += 1
            # Give the clients' requests a turn between bursts.
            await asyncio.sleep(0)


_FIELDS = {"Name": "setpoint", "Value": "value", "Factor": "factor"}
_RESULT_COUNTER = {"good": "PartsGood", "scrap": "PartsScrap", "rework": "PartsRework"}
# The variables ``tap`` writes, by their path below the station (``_keep``).
_SENSOR_PATHS = {name: f"Sensors/{browse}" for name, browse in SENSOR_BROWSE_NAMES.items()}
_COUNTER_PATHS = {counter: f"Counters/{counter}" for counter in COUNTERS}


def wait_for_server(host: str, port: int, timeout_s: float = 10.0) -> None:
    """Until the server's port takes connections (tests, benchmarks)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
