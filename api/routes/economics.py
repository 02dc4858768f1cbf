"""Where the time and money go: losses, costs and the loss Pareto, valued by the twin.

The twin's view (built from MQTT messages) priced with the line config's rates
(``twin.state.economics``). The figures are for the current shift when a snapshot of
its start was taken, else since the twin started; each answer says which.
Every call feeds the app's ``ShiftTracker`` (on ``app.state.economics_shifts``),
so a dashboard polling every few seconds keeps the shift snapshots current.
"""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request

from api.deps import TwinDep
from twin.config.line import LineConfig
from twin.state.economics import EconomicsView, ShiftTracker

router = APIRouter(tags=["economics"])
_tracker_lock = threading.Lock()


def get_line_config(request: Request) -> LineConfig:
    config: LineConfig | None = getattr(request.app.state, "config", None)
    if config is None:
        raise HTTPException(status_code=503, detail="no line config: this API has no prices")
    return config


def get_shift_tracker(request: Request) -> ShiftTracker:
    state = request.app.state
    with _tracker_lock:
        tracker: ShiftTracker | None = getattr(state, "economics_shifts", None)
        if tracker is None:
            tracker = state.economics_shifts = ShiftTracker()
    return tracker


ConfigDep = Annotated[LineConfig, Depends(get_line_config)]
ShiftTrackerDep = Annotated[ShiftTracker, Depends(get_shift_tracker)]


@router.get(
    "/economics",
    response_model=EconomicsView,
    summary="Money lost by category, cost and energy per good part, the loss Pareto",
    responses={503: {"description": "The app has no line config, so no prices."}},
)
def read_economics(twin: TwinDep, config: ConfigDep, shifts: ShiftTrackerDep) -> EconomicsView:
    return shifts.observe(twin.view(), config)
