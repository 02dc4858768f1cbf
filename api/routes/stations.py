"""One station of the line."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path

from api.deps import LineDep
from twin.state.views import StationView

router = APIRouter(prefix="/stations", tags=["stations"])


@router.get("", response_model=list[StationView], summary="All stations in line order")
def list_stations(line: LineDep) -> list[StationView]:
    return line.twin.view().stations


@router.get(
    "/{station_id}",
    response_model=StationView,
    summary="One station",
    responses={404: {"description": "Unknown station"}},
)
def read_station(
    station_id: Annotated[str, Path(examples=["machining"])], line: LineDep
) -> StationView:
    stations = line.twin.view().stations
    for station in stations:
        if station.id == station_id:
            return station
    known = ", ".join(station.id for station in stations) or "none seen yet"
    raise HTTPException(
        status_code=404,
        detail=f"station_id {station_id!r} is unknown on line {line.id!r}; known stations: {known}",
    )
