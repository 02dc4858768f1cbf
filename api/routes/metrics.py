"""Prometheus scrape endpoint: the twin's KPIs and counters in the text format."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from prometheus_client import generate_latest

from api.metrics.families import CONTENT_TYPE
from api.metrics.install import MetricsRegistryDep

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    summary="Prometheus metrics",
    description="The line's KPIs (OEE, throughput, WIP, defect ratio), per-station state, "
    "OEE and part counters, the ingest's message counters, gaps and drops, history "
    "and live-scoring figures, and API latency histograms, in the Prometheus text "
    "format 0.0.4. Read from the twin at scrape time; docs/api.md lists every metric.",
    responses={
        200: {
            "content": {CONTENT_TYPE: {}},
            "description": "Prometheus text exposition",
        }
    },
)
def read_metrics(registry: MetricsRegistryDep) -> PlainTextResponse:
    # A plain def: FastAPI runs it in a worker thread, so building the twin view
    # does not hold up the event loop.
    return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE)
