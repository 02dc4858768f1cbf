"""Metrics of the API itself: the live stream's hub and the background jobs.

Kept apart from ``api.metrics.twin`` (the line's metrics): these describe the
server, not the line, so they carry no line labels. Read at scrape time from
``app.state``; a part the app has not started yet (the stream before the
lifespan) is left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from api.metrics.families import PREFIX


class ApiCollector(Collector):
    def __init__(self, app: FastAPI) -> None:
        self.state = app.state

    def collect(self) -> Iterable[Metric]:
        stream: Any = getattr(self.state, "stream", None)
        if stream is not None:
            stats = stream.stats()
            yield GaugeMetricFamily(
                f"{PREFIX}_stream_clients", "Clients connected to GET /stream.", stats["clients"]
            )
            yield CounterMetricFamily(
                f"{PREFIX}_stream_samples",
                "Times the stream hub sampled the twin for changes.",
                stats["samples"],
            )
            yield CounterMetricFamily(
                f"{PREFIX}_stream_overflows",
                "Times a slow client's queue overflowed and its events were coalesced.",
                stats["overflows"],
            )
            yield CounterMetricFamily(
                f"{PREFIX}_stream_resets",
                "Reset snapshots sent (overflow, or a Last-Event-ID out of the buffer).",
                stats["resets"],
            )
            yield CounterMetricFamily(
                f"{PREFIX}_stream_errors", "Hub samples that failed.", stats["errors"]
            )
        jobs: Any = getattr(self.state, "jobs", None)
        if jobs is not None:
            family = GaugeMetricFamily(
                f"{PREFIX}_jobs", "Background jobs the API knows, by status.", labels=["status"]
            )
            for status, count in jobs.counts().items():
                family.add_metric([status], count)
            yield family
            yield CounterMetricFamily(
                f"{PREFIX}_jobs_submitted", "Background jobs started.", jobs.submitted
            )
