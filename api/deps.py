"""Typed dependencies: the shared objects that live on ``app.state``."""

from __future__ import annotations

from typing import Annotated, Any, Protocol

from fastapi import Depends, Request

from twin.state import TwinState


class HealthSource(Protocol):
    def health(self) -> dict[str, Any]: ...


def get_twin(request: Request) -> TwinState:
    twin: TwinState = request.app.state.twin
    return twin


def get_ingest_health(request: Request) -> HealthSource | None:
    source: HealthSource | None = request.app.state.ingest
    return source


def get_plant_health(request: Request) -> HealthSource | None:
    source: HealthSource | None = getattr(request.app.state, "publisher", None)
    return source


TwinDep = Annotated[TwinState, Depends(get_twin)]
IngestHealthDep = Annotated[HealthSource | None, Depends(get_ingest_health)]
PlantHealthDep = Annotated[HealthSource | None, Depends(get_plant_health)]
