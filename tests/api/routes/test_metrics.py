"""/metrics: the Prometheus exposition matches what the twin view and the health
sources say, computed here from those sources, and API latency is counted per
route template."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from feeding import feed_twin
from helpers import MemoryClient
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.parser import text_string_to_metric_families
from starlette.types import Message, Receive, Scope, Send

import twin.state.line
from api.app import create_app
from api.metrics.http import LatencyMiddleware
from sensors.ingest import Ingest
from sensors.publisher import PlantPublisher
from tests.twin.state.test_state import described_twin, header
from twin.contract import SCHEMA_VERSION, STATION_STATES, LineStatus, PartStarted
from twin.history.points import HistoryWriter, Point
from twin.history.store import SqliteStore
from twin.state.line import TwinState
from twin.state.views import LiveScoringView, ModelInUse

Labels = frozenset[tuple[str, str]]


class LossyClient(MemoryClient):
    """Loses every ``every``-th telemetry message as paho does with the broker
    gone: the publisher counts a drop and the ingest sees a sequence gap."""

    class Lost(MemoryClient.Info):
        rc = 4  # MQTT_ERR_NO_CONN

    def __init__(self, forward: Any, every: int) -> None:
        super().__init__(forward)
        self.every = every
        self.telemetry = 0

    def publish(
        self, topic: str, payload: bytes, qos: int = 0, retain: bool = False
    ) -> MemoryClient.Info:
        if topic.endswith("/telemetry"):
            self.telemetry += 1
            if self.telemetry % self.every == 0:
                return self.Lost()
        return super().publish(topic, payload, qos, retain)


@dataclass
class Line:
    twin: TwinState
    ingest: Ingest
    publisher: PlantPublisher


def _line(hours: float, *, lossy: bool = False) -> Line:
    fed = feed_twin(
        hours, seed=5, client=(lambda handle: LossyClient(handle, every=40)) if lossy else None
    )
    twin, ingest, topics, client, publisher = (
        fed.twin,
        fed.ingest,
        fed.topics,
        fed.client,
        fed.publisher,
    )
    if lossy:
        ingest.handle(topics.station("welding", "telemetry"), b"garbage")
        # QoS 1 may deliver twice: the ingest drops the copy and counts it.
        topic, payload, _, _ = next(m for m in reversed(client.messages) if "/event" in m[0])
        ingest.handle(topic, payload)
    return Line(twin, ingest, publisher)


@pytest.fixture(scope="module")
def line() -> Line:
    return _line(6, lossy=True)


@pytest.fixture(scope="module")
def client(line: Line) -> TestClient:
    app = create_app(twin_state=line.twin, ingest=line.ingest)
    app.state.publisher = line.publisher
    return TestClient(app)


def scrape(client: TestClient) -> dict[str, dict[Labels, float]]:
    """Sample name -> (labels -> value)."""
    response = client.get("/metrics")
    assert response.status_code == 200
    samples: dict[str, dict[Labels, float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return samples


def labels(twin: TwinState, **extra: str) -> Labels:
    base = {"site": twin.site, "area": twin.area, "line": twin.line}
    return frozenset({**base, **extra}.items())


def test_the_content_type_is_prometheus_text_0_0_4(client: TestClient) -> None:
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert response.text.startswith("# HELP factory_twin_")


def test_the_route_is_documented_in_openapi(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/metrics"]["get"]
    assert "Prometheus" in operation["description"]
    assert "text/plain; version=0.0.4; charset=utf-8" in operation["responses"]["200"]["content"]


def test_line_kpis_match_the_twin_view(client: TestClient, line: Line) -> None:
    samples = scrape(client)
    view = line.twin.view()
    kpis = view.kpis
    expected = {
        "factory_twin_line_oee_ratio": kpis.oee,
        "factory_twin_line_availability_ratio": kpis.availability,
        "factory_twin_line_effectiveness_ratio": kpis.effectiveness,
        "factory_twin_line_quality_ratio": kpis.quality_ratio,
        "factory_twin_line_throughput_parts_per_hour": kpis.throughput_per_h,
        "factory_twin_line_wip_parts": kpis.work_in_process,
        "factory_twin_line_scrap_ratio": kpis.scrap_ratio,
        "factory_twin_twin_updates_total": line.twin.updates,
        "factory_twin_line_sim_time_seconds": view.sim_time_s,
    }
    line_labels = labels(line.twin)
    for name, value in expected.items():
        assert value is not None, name
        assert samples[name] == {line_labels: pytest.approx(value)}, name
    assert kpis.scrap > 0  # the defect ratio below is not a trivial zero
    defects = (kpis.scrap + kpis.rework) / (kpis.good + kpis.scrap + kpis.rework)
    assert samples["factory_twin_line_defect_ratio"][line_labels] == pytest.approx(defects)
    parts = samples["factory_twin_line_parts_total"]
    assert parts[labels(line.twin, result="good")] == kpis.good
    assert parts[labels(line.twin, result="scrap")] == kpis.scrap
    assert parts[labels(line.twin, result="rework")] == kpis.rework
    status = samples["factory_twin_line_status"]
    assert view.status == "online"
    assert status == {
        labels(line.twin, status=s): float(s == view.status)
        for s in ("online", "offline", "unknown")
    }


def test_station_metrics_match_the_twin_view(client: TestClient, line: Line) -> None:
    samples = scrape(client)
    stations = line.twin.view().stations
    assert stations
    for station in stations:
        at = {"station": station.id}
        assert samples["factory_twin_station_oee_ratio"][labels(line.twin, **at)] == (
            pytest.approx(station.kpis.oee)
        )
        assert samples["factory_twin_station_parts_started_total"][labels(line.twin, **at)] == (
            station.started
        )
        for result, count in (
            ("good", station.good),
            ("scrap", station.scrap),
            ("rework", station.rework),
        ):
            assert (
                samples["factory_twin_station_parts_total"][labels(line.twin, result=result, **at)]
                == count
            )
        states = {
            state: samples["factory_twin_station_state"][labels(line.twin, state=state, **at)]
            for state in STATION_STATES
        }
        assert station.state is not None
        assert states == {state: float(state == station.state) for state in STATION_STATES}
    # No live scoring here: the per-station scores are left out, not sent as NaN.
    assert "factory_twin_station_defect_risk_ratio" not in samples
    assert samples["factory_twin_scoring_enabled"] == {labels(line.twin): 0.0}


def test_ingest_counters_match_its_health(client: TestClient, line: Line) -> None:
    samples = scrape(client)
    health = line.ingest.health()
    # The fixture lost, broke and repeated messages: every counter below has a
    # non-trivial value to match.
    assert health["gaps"] > 0
    assert health["duplicates"] >= 1
    assert health["malformed"]["not_json"] == 1
    at = labels(line.twin)
    assert samples["factory_twin_ingest_messages_received_total"] == {at: health["received"]}
    assert samples["factory_twin_ingest_messages_accepted_total"] == {at: health["accepted"]}
    assert samples["factory_twin_ingest_messages_duplicate_total"] == {at: health["duplicates"]}
    assert samples["factory_twin_ingest_messages_late_total"] == {at: health["late"]}
    assert samples["factory_twin_ingest_sequence_gap_messages"] == {at: health["gaps"]}
    assert samples["factory_twin_ingest_messages_malformed_total"] == {
        labels(line.twin, kind=kind): count for kind, count in health["malformed"].items()
    }
    assert samples["factory_twin_ingest_sequence_gap_by_channel_messages"] == {
        labels(line.twin, channel=channel): count
        for channel, count in health["gaps_by_channel"].items()
    }
    assert samples["factory_twin_ingest_connected"] == {at: float(health["connected"])}
    assert samples["factory_twin_metrics_source_up"][labels(line.twin, source="ingest")] == 1


def test_plant_publisher_counters_match_its_health(client: TestClient, line: Line) -> None:
    samples = scrape(client)
    health = line.publisher.health()
    assert set(health["dropped"]) == {"telemetry: broker unreachable"}
    assert health["dropped"]["telemetry: broker unreachable"] > 0
    assert samples["factory_twin_plant_messages_published_total"] == {
        labels(line.twin, kind=kind): count for kind, count in health["published"].items()
    }
    assert samples["factory_twin_plant_messages_dropped_total"] == {
        labels(line.twin, kind="telemetry", reason="broker unreachable"): health["dropped"][
            "telemetry: broker unreachable"
        ]
    }
    # The ingest misses what the publisher dropped; a loss at the tail of a stream
    # shows as a gap only once the stream's next message comes.
    gaps = line.ingest.health()["gaps"]
    assert 0 < gaps <= health["dropped"]["telemetry: broker unreachable"]


def test_history_counters_match_the_writer(tmp_path: Path, line: Line) -> None:
    store = SqliteStore(tmp_path / "history.sqlite3", retention_ms=None)
    writer = HistoryWriter(store)
    tags = {"site": "plant-a", "area": "fabrication", "line": "line1", "station": "welding"}
    writer.write(
        [
            Point("telemetry", tags, {"temperature_c": 20.0 + i, "power_kw": 1.0}, i)
            for i in range(50)
        ]
    )
    store.flush(10)
    app = create_app(twin_state=line.twin)
    app.state.writer = writer
    try:
        samples = scrape(TestClient(app))
        health = writer.health()
    finally:
        store.close()
    at = labels(line.twin)
    assert health["store"]["acknowledged"] == 100
    assert samples["factory_twin_history_points_total"] == {at: health["points"]}
    assert samples["factory_twin_history_samples_total"] == {at: health["samples"]}
    assert samples["factory_twin_history_store_acknowledged_samples_total"] == {
        at: health["store"]["acknowledged"]
    }
    assert samples["factory_twin_history_store_queued_samples"] == {at: health["store"]["queued"]}


def test_without_ingest_or_history_the_scrape_still_works(line: Line) -> None:
    samples = scrape(TestClient(create_app(twin_state=line.twin)))
    assert "factory_twin_line_oee_ratio" in samples
    for prefix in ("ingest_", "plant_", "history_", "metrics_source_up"):
        assert not [name for name in samples if name.startswith(f"factory_twin_{prefix}")], prefix


def test_a_failing_source_is_reported_not_fatal(line: Line) -> None:
    class Broken:
        def health(self) -> dict[str, Any]:
            raise RuntimeError("boom")

    app = create_app(twin_state=line.twin, ingest=Broken())
    samples = scrape(TestClient(app))
    assert samples["factory_twin_metrics_source_up"] == {labels(line.twin, source="ingest"): 0}
    assert "factory_twin_ingest_messages_received_total" not in samples
    assert "factory_twin_line_oee_ratio" in samples


def test_live_scoring_shows_when_present() -> None:
    line = _line(0.25)
    summary = LiveScoringView(
        status="on",
        defect_model=ModelInUse(name="defect", version=2, kind="station"),
        threshold=0.4,
        window_size=100,
        parts_in_window=40,
        parts_scored=57,
        defect_risk=0.0625,
        defect_rate=0.05,
        precision=0.75,
        recall=0.5,
        errors=1,
    )
    line.twin.set_live_scoring(summary, {"machining": 0.125})
    samples = scrape(TestClient(create_app(twin_state=line.twin)))
    view = line.twin.view()
    at = labels(line.twin)
    models = view.models
    assert samples["factory_twin_scoring_enabled"] == {at: 1}
    assert samples["factory_twin_scoring_precision_ratio"] == {at: models.precision}
    assert samples["factory_twin_scoring_recall_ratio"] == {at: models.recall}
    assert samples["factory_twin_scoring_defect_risk_ratio"] == {at: models.defect_risk}
    assert samples["factory_twin_scoring_parts_scored_total"] == {at: models.parts_scored}
    assert samples["factory_twin_scoring_errors_total"] == {at: models.errors}
    risks = {s.id: s.defect_risk for s in view.stations if s.defect_risk is not None}
    assert risks
    assert samples["factory_twin_station_defect_risk_ratio"] == {
        labels(line.twin, station=station): risk for station, risk in risks.items()
    }


def _latency_counts(samples: dict[str, dict[Labels, float]]) -> dict[tuple[str, str, str], float]:
    return {
        (dict(key)["method"], dict(key)["route"], dict(key)["status_code"]): value
        for key, value in samples["factory_twin_http_request_duration_seconds_count"].items()
    }


def test_latency_is_counted_per_route_template(line: Line) -> None:
    client = TestClient(create_app(twin_state=line.twin))
    for _ in range(3):
        assert client.get("/twin").status_code == 200
    for _ in range(2):
        assert client.get("/stations/machining").status_code == 200
    assert client.get("/stations/nope").status_code == 404
    assert client.get("/no/such/path").status_code == 404
    assert client.request("BREW", "/twin").status_code == 405
    samples = scrape(client)
    counts = _latency_counts(samples)
    assert counts == {
        ("GET", "/twin", "200"): 3,
        ("GET", "/stations/{station_id}", "200"): 2,
        ("GET", "/stations/{station_id}", "404"): 1,
        ("GET", "unmatched", "404"): 1,
        ("other", "/twin", "405"): 1,
    }
    # The histogram's buckets hold every request; its sum is real time.
    twin_route = {"method": "GET", "route": "/twin", "status_code": "200"}
    buckets = samples["factory_twin_http_request_duration_seconds_bucket"]
    assert buckets[frozenset({**twin_route, "le": "+Inf"}.items())] == 3
    assert (
        samples["factory_twin_http_request_duration_seconds_sum"][frozenset(twin_route.items())] > 0
    )
    # The scrape that answered is counted from the next one on.
    again = _latency_counts(scrape(client))
    assert again[("GET", "/metrics", "200")] == 1


def test_each_app_has_its_own_registry(line: Line) -> None:
    first = TestClient(create_app(twin_state=line.twin))
    second = TestClient(create_app(twin_state=line.twin))
    first.get("/twin")
    assert ("GET", "/twin", "200") in _latency_counts(scrape(first))
    assert "factory_twin_http_request_duration_seconds_count" not in scrape(second)


def test_the_middleware_passes_a_stream_through_as_it_comes() -> None:
    """Each body chunk reaches the server before the app sends the next: an SSE
    stream is not buffered, and it is timed once it ends."""
    histogram = Histogram(
        "duration_seconds", "test", ["method", "route", "status_code"], registry=CollectorRegistry()
    )
    sent: list[Message] = []

    async def stream(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for index in range(3):
            await send(
                {"type": "http.response.body", "body": b"data: %d\n\n" % index, "more_body": True}
            )
            # The chunk is already out when the app goes on.
            assert sent[-1]["body"] == b"data: %d\n\n" % index
            assert histogram.collect()[0].samples == []
        await send({"type": "http.response.body", "body": b""})

    async def server_send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    scope: Scope = {"type": "http", "method": "GET", "path": "/stream"}
    asyncio.run(LatencyMiddleware(stream, histogram)(scope, receive, server_send))
    assert len(sent) == 5
    count = next(s for s in histogram.collect()[0].samples if s.name.endswith("_count"))
    assert count.labels == {"method": "GET", "route": "unmatched", "status_code": "200"}
    assert count.value == 1


def test_events_forced_past_the_watermark_are_counted_in_healthz_and_metrics(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stream that never completes (station b announced one event and sent none)
    holds the watermark: past ``MAX_HELD`` held events the oldest go in anyway, each
    counted, and /healthz and /metrics say how many."""
    monkeypatch.setattr(twin.state.line, "MAX_HELD", 5)
    state = described_twin()
    state.apply_line_status(
        LineStatus(
            schema_version=SCHEMA_VERSION,
            ts_ms=2,
            seq=1,
            source="test",
            status="online",
            sim_time_s=1.0,
            published_events={"a": 1, "b": 1},
            published_telemetry={},
        )
    )
    sent = 20
    for seq in range(sent):
        event = header(10.0 + seq) | {"seq": seq}
        state.apply_event(
            "a", PartStarted(**event, event="part_started", part_id=seq, input_buffer_level=None)
        )
    client = TestClient(create_app(twin_state=state))
    health = client.get("/healthz").json()
    assert health["twin_held"] == 5
    assert health["twin_held_forced"] == sent - 5
    samples = scrape(client)
    assert samples["factory_twin_twin_held_messages"][labels(state)] == 5
    assert samples["factory_twin_twin_held_forced_total"][labels(state)] == sent - 5
