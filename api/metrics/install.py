"""An app's own metrics registry: the collectors, the latency middleware, and the
dependency the ``/metrics`` route reads it through."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request
from prometheus_client import CollectorRegistry

from api.metrics.http import LatencyMiddleware, request_histogram
from api.metrics.server import ApiCollector
from api.metrics.twin import MetricsSources, TwinCollector


def install_metrics(app: FastAPI, sources: MetricsSources | None = None) -> CollectorRegistry:
    """Give the app its own registry, the twin collector and the latency middleware.

    ``sources`` defaults to what lives on ``app.state`` (twin, ingest, publisher,
    writer), read at each scrape. Call before the app starts (middleware).
    """
    registry = CollectorRegistry()
    registry.register(TwinCollector(sources or MetricsSources.from_app(app)))
    registry.register(ApiCollector(app))
    app.add_middleware(LatencyMiddleware, histogram=request_histogram(registry))
    app.state.metrics_registry = registry
    return registry


def get_metrics_registry(request: Request) -> CollectorRegistry:
    registry: CollectorRegistry | None = getattr(request.app.state, "metrics_registry", None)
    if registry is None:
        raise HTTPException(status_code=503, detail="metrics are not installed on this app")
    return registry


MetricsRegistryDep = Annotated[CollectorRegistry, Depends(get_metrics_registry)]
