"""The line's metrics: the twin's KPIs, its stations, its scoring, and the counters
of the data path (ingest, the plant's publisher, the history writer), read once
per scrape."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import FastAPI
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from api.metrics.families import HealthSource, LineFamilies
from twin.contract import STATION_STATES
from twin.state.line import Lag
from twin.state.views import LineView

log = logging.getLogger(__name__)

LINE_STATUSES = ("online", "offline", "unknown")
PART_RESULTS = ("good", "scrap", "rework")


class TwinSource(Protocol):
    @property
    def updates(self) -> int: ...

    def view(self) -> LineView: ...

    def lag(self) -> Lag: ...


@dataclass(frozen=True)
class MetricsSources:
    """Where a scrape reads from: each is asked at scrape time, so a source set
    later (the stack's lifespan) is seen, and one that is None is left out."""

    twin: Callable[[], TwinSource | None]
    ingest: Callable[[], HealthSource | None]
    plant: Callable[[], HealthSource | None]
    history: Callable[[], HealthSource | None]

    @classmethod
    def from_app(cls, app: FastAPI) -> MetricsSources:
        state = app.state
        return cls(
            twin=lambda: getattr(state, "twin", None),
            ingest=lambda: getattr(state, "ingest", None),
            plant=lambda: getattr(state, "publisher", None),
            history=lambda: getattr(state, "writer", None),
        )


def defect_ratio(view: LineView) -> float | None:
    """(scrap + rework) / (good + scrap + rework): the share of the line's outcomes
    that were not good first time; None before any part is finished."""
    kpis = view.kpis
    outcomes = kpis.good + kpis.scrap + kpis.rework
    if outcomes == 0:
        return None
    return (kpis.scrap + kpis.rework) / outcomes


class TwinCollector(Collector):
    """Reads the twin and the health sources once per scrape."""

    def __init__(self, sources: MetricsSources) -> None:
        self.sources = sources

    def collect(self) -> Iterable[Metric]:
        twin = self.sources.twin()
        if twin is None:
            return []
        view = twin.view()
        line = LineFamilies(view)
        families: list[Metric] = [
            *self._line(line, view, twin.updates),
            *self._held(line, twin.lag()),
            *self._stations(line, view),
            *self._scoring(line, view),
        ]
        sources_up = line.labelled_gauge(
            "metrics_source_up",
            "1 when the source answered this scrape, 0 when its health() raised "
            "(its metrics are then missing).",
            ["source"],
        )
        readers: tuple[tuple[str, Callable[[], HealthSource | None], Callable[..., Any]], ...] = (
            ("ingest", self.sources.ingest, self._ingest),
            ("plant", self.sources.plant, self._plant),
            ("history", self.sources.history, self._history),
        )
        for source_name, source, build in readers:
            health_source = source()
            if health_source is None:
                continue
            try:
                health = health_source.health()
            except Exception:
                # One broken source must not take the whole scrape down.
                log.exception("metrics: %s health failed", source_name)
                line.add(sources_up, 0, source_name)
                continue
            line.add(sources_up, 1, source_name)
            families.extend(build(line, health))
        families.append(sources_up)
        return [family for family in families if family.samples]

    @staticmethod
    def _held(line: LineFamilies, lag: Lag) -> Iterator[Metric]:
        yield line.gauge(
            "twin_held_messages",
            "Events received beyond the twin's watermark, not counted yet.",
            lag.held,
        )
        yield line.counter(
            "twin_held_forced",
            "Events applied beyond the watermark because too many were held back (a "
            "stream that never completes): figures then not all as of one time.",
            lag.held_forced,
        )

    # -- the line ----------------------------------------------------------------
    @staticmethod
    def _line(line: LineFamilies, view: LineView, updates: int) -> Iterator[Metric]:
        kpis = view.kpis
        status = line.labelled_gauge(
            "line_status", "Line status from its retained topic: 1 for the current one.", ["status"]
        )
        for name in LINE_STATUSES:
            line.add(status, 1 if view.status == name else 0, name)
        yield status
        yield line.counter("twin_updates", "Messages the twin has applied.", updates)
        yield line.gauge(
            "line_sim_time_seconds",
            "Line time the twin's figures are as of: its watermark.",
            view.sim_time_s,
        )
        yield line.gauge(
            "line_newest_sim_time_seconds",
            "The newest line time the twin knows of.",
            view.newest_sim_time_s,
        )
        yield line.gauge(
            "twin_lag_seconds",
            "Line seconds the twin's figures trail its line (absent: not known).",
            view.lag_s,
        )
        yield line.gauge(
            "twin_lag_messages",
            "Messages the line published that have not reached the twin yet.",
            view.lag_messages,
        )
        yield line.gauge(
            "line_speed_factor",
            "Line seconds per wall second in force, as the line announced it.",
            view.speed_factor,
        )
        yield line.gauge(
            "line_speed_asked_factor",
            "Line seconds per wall second asked for (above line_speed_factor while paced).",
            view.speed_asked,
        )
        yield line.gauge("line_observed_seconds", "The observed span (line PBT).", kpis.observed_s)
        yield line.gauge("line_oee_ratio", "Line OEE, measured at the constraint.", kpis.oee)
        yield line.gauge(
            "line_availability_ratio", "Line availability: APT / PBT.", kpis.availability
        )
        yield line.gauge(
            "line_effectiveness_ratio", "Line effectiveness: PRU x PQ / APT.", kpis.effectiveness
        )
        yield line.gauge("line_quality_ratio", "Line quality ratio: GQ / PQ.", kpis.quality_ratio)
        yield line.gauge(
            "line_throughput_parts_per_hour",
            "Good parts per hour of simulation time over the observed span.",
            kpis.throughput_per_h,
        )
        yield line.gauge(
            "line_wip_parts",
            "Work in process: released, not shipped or scrapped.",
            kpis.work_in_process,
        )
        yield line.gauge("line_mean_wip_parts", "Time-average WIP (L).", kpis.mean_wip)
        yield line.gauge(
            "line_cycle_time_seconds", "Lead time W = L / lambda (Little's law).", kpis.cycle_time_s
        )
        yield line.gauge(
            "line_defect_ratio",
            "(scrap + rework) / (good + scrap + rework): outcomes not good first time.",
            defect_ratio(view),
        )
        yield line.gauge("line_scrap_ratio", "Scrap / produced.", kpis.scrap_ratio)
        yield line.gauge(
            "line_first_pass_yield_ratio",
            "Shipped without rework / produced.",
            kpis.first_pass_yield,
        )
        parts = line.labelled_counter(
            "line_parts",
            "Parts leaving the line by result: good (shipped), scrap, rework (passes sent back).",
            ["result"],
        )
        for result, count in zip(PART_RESULTS, (kpis.good, kpis.scrap, kpis.rework), strict=True):
            line.add(parts, count, result)
        yield parts

    # -- stations ----------------------------------------------------------------
    @staticmethod
    def _stations(line: LineFamilies, view: LineView) -> Iterator[Metric]:
        station_label = ["station"]
        state = line.labelled_gauge(
            "station_state",
            "Station headline state: 1 for the current one, all 0 while unknown.",
            [*station_label, "state"],
        )
        kpi_families = {
            "oee": line.labelled_gauge("station_oee_ratio", "Station OEE.", station_label),
            "availability": line.labelled_gauge(
                "station_availability_ratio", "Station availability: APT / PBT.", station_label
            ),
            "effectiveness": line.labelled_gauge(
                "station_effectiveness_ratio",
                "Station effectiveness: PRU x PQ / APT.",
                station_label,
            ),
            "quality_ratio": line.labelled_gauge(
                "station_quality_ratio", "Station quality ratio: GQ / PQ.", station_label
            ),
        }
        parts = line.labelled_counter(
            "station_parts", "Parts finished at the station by result.", [*station_label, "result"]
        )
        started = line.labelled_counter(
            "station_parts_started", "Parts started at the station.", station_label
        )
        buffer = line.labelled_gauge(
            "station_input_buffer_parts",
            "Parts waiting in the station's input buffer.",
            station_label,
        )
        risk = line.labelled_gauge(
            "station_defect_risk_ratio",
            "Live scoring: mean predicted probability that a part first fails here.",
            station_label,
        )
        for station in view.stations:
            for name in STATION_STATES:
                line.add(state, 1 if station.state == name else 0, station.id, name)
            for field, family in kpi_families.items():
                value = getattr(station.kpis, field)
                if value is not None:
                    line.add(family, value, station.id)
            for result, count in zip(
                PART_RESULTS, (station.good, station.scrap, station.rework), strict=True
            ):
                line.add(parts, count, station.id, result)
            line.add(started, station.started, station.id)
            if station.input_buffer is not None and station.input_buffer.level is not None:
                line.add(buffer, station.input_buffer.level, station.id)
            if station.defect_risk is not None:
                line.add(risk, station.defect_risk, station.id)
        yield from (state, *kpi_families.values(), parts, started, buffer, risk)

    # -- live scoring ------------------------------------------------------------
    @staticmethod
    def _scoring(line: LineFamilies, view: LineView) -> Iterator[Metric]:
        models = view.models
        yield line.gauge(
            "scoring_enabled", "1 while live defect scoring is on.", models.status == "on"
        )
        if models.status != "on" and models.parts_scored == 0:  # off, or training
            return
        yield line.gauge(
            "scoring_precision_ratio", "Precision over the rolling window.", models.precision
        )
        yield line.gauge("scoring_recall_ratio", "Recall over the rolling window.", models.recall)
        yield line.gauge(
            "scoring_defect_risk_ratio",
            "Mean predicted defect probability over the window.",
            models.defect_risk,
        )
        yield line.gauge(
            "scoring_defect_ratio",
            "Share of the window's parts inspection found defective.",
            models.defect_rate,
        )
        yield line.gauge(
            "scoring_window_parts", "Parts in the rolling window.", models.parts_in_window
        )
        yield line.counter("scoring_parts_scored", "Parts scored.", models.parts_scored)
        yield line.counter(
            "scoring_parts_unscored",
            "Parts that left while the model failed.",
            models.parts_unscored,
        )
        yield line.counter("scoring_errors", "Micro-batches or stages that failed.", models.errors)

    # -- health sources ------------------------------------------------------------
    @staticmethod
    def _ingest(line: LineFamilies, health: Mapping[str, Any]) -> Iterator[Metric]:
        yield line.gauge(
            "ingest_connected",
            "1 while the ingest is connected to the broker.",
            health.get("connected"),
        )
        yield line.counter("ingest_messages_received", "Messages received.", health.get("received"))
        yield line.counter(
            "ingest_messages_accepted", "Messages the twin accepted.", health.get("accepted")
        )
        malformed = line.labelled_counter(
            "ingest_messages_malformed", "Messages refused, by kind of decode error.", ["kind"]
        )
        for kind, count in dict(health.get("malformed") or {}).items():
            line.add(malformed, count, kind)
        yield malformed
        yield line.counter(
            "ingest_messages_unknown_topic",
            "Messages on a topic the ingest does not know.",
            health.get("unknown_topic"),
        )
        yield line.counter(
            "ingest_messages_duplicate",
            "Duplicates dropped (QoS 1 redelivery).",
            health.get("duplicates"),
        )
        yield line.counter(
            "ingest_messages_late",
            "Messages that arrived after a later sequence number.",
            health.get("late"),
        )
        # Gaps shrink when a late message fills one, so they are gauges, not counters.
        yield line.gauge(
            "ingest_sequence_gap_messages",
            "Messages missing from the sequence numbers (late arrivals fill gaps back).",
            health.get("gaps"),
        )
        by_channel = line.labelled_gauge(
            "ingest_sequence_gap_by_channel_messages",
            "Messages missing from the sequence numbers, by channel.",
            ["channel"],
        )
        for channel, count in dict(health.get("gaps_by_channel") or {}).items():
            line.add(by_channel, count, channel)
        yield by_channel
        yield line.gauge(
            "ingest_last_message_age_seconds",
            "Wall-clock seconds since the latest message.",
            health.get("last_message_age_s"),
        )

    @staticmethod
    def _plant(line: LineFamilies, health: Mapping[str, Any]) -> Iterator[Metric]:
        published = line.labelled_counter(
            "plant_messages_published", "Messages the plant's publisher sent, by kind.", ["kind"]
        )
        for kind, count in dict(health.get("published") or {}).items():
            line.add(published, count, kind)
        yield published
        dropped = line.labelled_counter(
            "plant_messages_dropped",
            "Messages the publisher dropped, by kind and reason.",
            ["kind", "reason"],
        )
        for key, count in dict(health.get("dropped") or {}).items():
            kind, _, reason = str(key).partition(": ")
            line.add(dropped, count, kind, reason)
        yield dropped
        yield line.gauge(
            "plant_outbox_pending_messages",
            "QoS 1 messages not acknowledged yet.",
            health.get("outbox_pending"),
        )
        yield line.gauge(
            "plant_outbox_limit_messages",
            "Most messages paho may hold: past it a live line waits, a batch one drops.",
            health.get("outbox_limit"),
        )
        yield line.gauge(
            "plant_outbox_messages",
            "QoS 1 messages paho holds (unacknowledged or queued).",
            health.get("outbox_size"),
        )
        yield line.counter(
            "plant_outbox_waits",
            "Times the live line waited for room in a full outbox (it slowed down).",
            health.get("outbox_waits"),
        )
        yield line.gauge(
            "plant_speed_in_force_factor",
            "The simulated plant's speed in force (paced on its pipeline).",
            health.get("speed_in_force"),
        )
        yield line.gauge(
            "plant_speed_asked_factor",
            "The simulated plant's speed asked.",
            health.get("speed_asked"),
        )
        yield line.gauge(
            "plant_pace_pressure_ratio",
            "The pressure on the plant's pace (1: a bound reached, it slows down).",
            health.get("pressure"),
        )

    @staticmethod
    def _history(line: LineFamilies, health: Mapping[str, Any]) -> Iterator[Metric]:
        yield line.counter("history_points", "Points written to history.", health.get("points"))
        yield line.counter(
            "history_samples", "Samples (fields) written to history.", health.get("samples")
        )
        store: Mapping[str, Any] = health.get("store") or {}
        yield line.counter(
            "history_store_acknowledged_samples",
            "Samples the embedded store committed.",
            store.get("acknowledged"),
        )
        yield line.gauge(
            "history_store_queued_samples", "Samples waiting to be committed.", store.get("queued")
        )
        yield line.counter(
            "history_store_batches", "Batches the store committed.", store.get("batches")
        )
        yield line.counter(
            "history_store_retention_deleted_samples",
            "Samples retention deleted.",
            store.get("retention_deleted"),
        )
        yield line.counter(
            "history_store_not_finite_samples",
            "Non-finite values refused.",
            store.get("not_finite"),
        )
        sinks: Mapping[str, Mapping[str, Any]] = health.get("sinks") or {}
        sink = ["sink"]
        written = line.labelled_counter(
            "history_sink_written_samples", "Samples a sink delivered.", sink
        )
        pending = line.labelled_gauge(
            "history_sink_pending_samples", "Samples a sink has yet to send.", sink
        )
        lost = line.labelled_counter(
            "history_sink_lost_samples", "Samples retention deleted before a sink had them.", sink
        )
        connected = line.labelled_gauge(
            "history_sink_connected", "1 when the sink's last request succeeded.", sink
        )
        for name, sink_health in sinks.items():
            for family, key in (
                (written, "written"),
                (pending, "pending"),
                (lost, "lost"),
                (connected, "connected"),
            ):
                line.add(family, sink_health.get(key), name)
        yield from (written, pending, lost, connected)
