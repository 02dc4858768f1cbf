"""Typed dependencies: the shared objects that live on ``app.state``."""

from __future__ import annotations

from typing import Annotated, Any, Protocol

from fastapi import Depends, HTTPException, Request

from twin.history.points import HistoryStore
from twin.state.line import TwinState


class HealthSource(Protocol):
    def health(self) -> dict[str, Any]: ...


async def get_twin(request: Request) -> TwinState:
    # async: reading app.state needs no worker thread (a hop per request).
    twin: TwinState = request.app.state.twin
    return twin


def get_ingest_health(request: Request) -> HealthSource | None:
    source: HealthSource | None = request.app.state.ingest
    return source


def get_plant_health(request: Request) -> HealthSource | None:
    source: HealthSource | None = getattr(request.app.state, "publisher", None)
    return source


def get_history(request: Request) -> HistoryStore:
    store: HistoryStore | None = getattr(request.app.state, "history", None)
    if store is None:
        raise HTTPException(status_code=503, detail="history is not available yet")
    return store


def get_history_health(request: Request) -> HealthSource | None:
    source: HealthSource | None = getattr(request.app.state, "writer", None)
    return source


TwinDep = Annotated[TwinState, Depends(get_twin)]
HistoryHealthDep = Annotated[HealthSource | None, Depends(get_history_health)]
HistoryDep = Annotated[HistoryStore, Depends(get_history)]
IngestHealthDep = Annotated[HealthSource | None, Depends(get_ingest_health)]
PlantHealthDep = Annotated[HealthSource | None, Depends(get_plant_health)]
