"""Line KPIs per ISO 22400-2."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import TwinDep
from twin.state.views import LineKpis

router = APIRouter(tags=["kpis"])


@router.get("/kpis", response_model=LineKpis, summary="Line KPIs: OEE, throughput, yield")
def read_kpis(twin: TwinDep) -> LineKpis:
    return twin.view().kpis
