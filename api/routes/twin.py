"""The whole line as the twin sees it."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import TwinDep
from twin.views import LineView

router = APIRouter(tags=["twin"])


@router.get("/twin", response_model=LineView, summary="The whole line: stations, buffers, KPIs")
def read_twin(twin: TwinDep) -> LineView:
    return twin.view()
