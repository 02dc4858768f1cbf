"""The latest learnt line of each learner, for what asks often.

``recent_learnt`` answers ``learn_line`` again only when the last answer is
``CACHE_S`` seconds old: the alarms (every dashboard asks every few seconds),
the shadow forecasts (``api.shadow``) and ``choose_model`` (which line file a
what-if or an optimizer run uses) read it. ``GET /model`` always learns afresh.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from fastapi import HTTPException
from starlette.concurrency import run_in_threadpool

from twin.config.line import LineConfig
from twin.learning.line import LearnedLine, learn_line
from twin.learning.observer import LineLearner

if TYPE_CHECKING:
    from api.deps import LineStack

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


async def choose_model(
    line: LineStack, nominal: LineConfig, asked: str | None
) -> tuple[str, str, LineConfig]:
    """The line file a what-if or an optimizer run uses: (learned or nominal, why,
    the file). ``asked`` None: the learnt line once it is ready, else the file.
    409 when the learnt line is asked for and the line has no learner."""
    if asked == "nominal":
        return "nominal", "asked for", nominal
    if line.learner is None:
        if asked == "learned":
            raise HTTPException(status_code=409, detail="model: this line learns nothing")
        return "nominal", "this line learns nothing", nominal
    learnt = await run_in_threadpool(recent_learnt, nominal, line.learner)
    if asked is None and not learnt.ready:
        return "nominal", "the learnt line is not ready yet (GET /model: not_learnt)", nominal
    why = "asked for" if asked == "learned" else "the learnt line is ready"
    if not learnt.ready:
        why += "; not ready yet: what is not learnt keeps the file's values"
    return "learned", why, LineConfig.model_validate(learnt.line)


__all__ = ["CACHE_S", "choose_model", "recent_learnt"]
