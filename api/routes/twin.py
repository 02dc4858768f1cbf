"""The whole line as the twin sees it."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import TwinDep
from twin.state.views import LineView

router = APIRouter(tags=["twin"])


@router.get("/twin", response_model=LineView, summary="The whole line: stations, buffers, KPIs")
async def read_twin(twin: TwinDep) -> Response:
    # The body is made once per change of the twin and already is a LineView's
    # JSON: no thread hop, no validation of it again per request.
    return Response(twin.view_json(), media_type="application/json")
