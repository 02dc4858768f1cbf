"""Where the time and money go: losses, costs and the loss Pareto, valued by the twin.

The twin's view (built from MQTT messages) priced with the line config's rates
(``twin.state.economics``). The figures are for the current shift when a snapshot of
its start was taken, else since the twin started; each answer says which.
Every call feeds the line's ``ShiftTracker`` (``api.deps.get_shift_tracker``),
so a dashboard polling every few seconds keeps the shift snapshots current.
"""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ConfigDep, ShiftTrackerDep, TwinDep
from twin.state.economics import EconomicsView

router = APIRouter(tags=["economics"])


@router.get(
    "/economics",
    response_model=EconomicsView,
    summary="Money lost by category, cost and energy per good part, the loss Pareto",
    responses={503: {"description": "The app has no config for this line, so no prices."}},
)
def read_economics(twin: TwinDep, config: ConfigDep, shifts: ShiftTrackerDep) -> EconomicsView:
    return shifts.observe(twin.view(), config)
