"""The line learnt from its messages (``twin.learning``, docs/learning.md).

``GET /model`` answers the learnt line: the line file with every parameter the
stream has shown enough of put in, each beside its nominal value with its 95%
interval and sample size, and what is not learnt yet. ``GET /model/drift`` lists
the parameters whose interval leaves the nominal value out, the furthest first.
The fits run in a worker thread (about a second for a line of five stations);
``recent_learnt`` keeps the latest for ``CACHE_S`` seconds, for the alarms that
every dashboard asks for every few seconds.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.deps import LineDep
from twin.config.line import LineConfig
from twin.learning.line import LearnedLine, LearnedParameter, learn_line
from twin.learning.observer import LineLearner

router = APIRouter(tags=["learning"])

NO_MODEL: dict[int | str, dict[str, Any]] = {
    503: {"description": "No line file to start from, or no learner on this line."}
}


class LineDrift(BaseModel):
    """The learnt parameters that have left their nominal values."""

    drifted: list[LearnedParameter] = Field(
        description="Those whose 95% interval leaves the nominal value out, furthest first."
    )
    learnt: int = Field(description="How many parameters are learnt.")
    not_learnt: list[str]


# The alarms' learnt line is at most this old (wall-clock seconds).
CACHE_S = 30.0
_recent: dict[int, tuple[float, LineLearner, LearnedLine]] = {}
_recent_lock = threading.Lock()


def recent_learnt(config: LineConfig, learner: LineLearner) -> LearnedLine:
    """``learn_line`` of this learner, again only when the last is ``CACHE_S`` old."""
    now = time.monotonic()
    with _recent_lock:
        kept = _recent.get(id(learner))
        if kept is not None and kept[1] is learner and now - kept[0] < CACHE_S:
            return kept[2]
    learnt = learn_line(config, learner)
    with _recent_lock:
        _recent[id(learner)] = (now, learner, learnt)
    return learnt


async def _learnt(line: LineDep) -> LearnedLine:
    if line.learner is None:
        raise HTTPException(status_code=503, detail="this line has no learner")
    if line.config is None:
        raise HTTPException(
            status_code=503, detail="no line file to start from: a learnt line needs one yet"
        )
    return await run_in_threadpool(learn_line, line.config, line.learner)


@router.get(
    "/model",
    response_model=LearnedLine,
    summary="The line learnt from its messages, beside the line file",
    responses=NO_MODEL,
)
async def read_model(line: LineDep) -> LearnedLine:
    return await _learnt(line)


@router.get(
    "/model/drift",
    response_model=LineDrift,
    summary="The learnt parameters whose interval leaves the line file's value out",
    responses=NO_MODEL,
)
async def read_model_drift(line: LineDep) -> LineDrift:
    learnt = await _learnt(line)
    return LineDrift(
        drifted=learnt.drifted(), learnt=len(learnt.parameters), not_learnt=learnt.not_learnt
    )
