"""The latest learnt line of each learner, for what asks often.

``recent_learnt`` answers ``learn_line`` again only when the last answer is
``CACHE_S`` seconds old: the alarms (every dashboard asks every few seconds),
the shadow forecasts (``api.shadow``) and ``choose_model`` (which line file a
what-if or an optimizer run uses) read it. ``GET /model`` always learns afresh.
``working_line`` is the line file a what-if, an optimizer run or an apply works
on: ``choose_model``'s where the app has a file, and the learnt line where it
has none, once that is ready (409 saying what is missing until then).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from fastapi import HTTPException
from starlette.concurrency import run_in_threadpool

from twin.config.line import LineConfig
from twin.learning.line import LearnedLine, holding_back, learn_line, learn_unfiled_line
from twin.learning.observer import LineLearner
from twin.state.views import LineView

if TYPE_CHECKING:
    from api.deps import LineStack

# The alarms' learnt line is at most this old (wall-clock seconds).
CACHE_S = 30.0
_recent: dict[int, tuple[float, LineLearner, LearnedLine]] = {}
_recent_lock = threading.Lock()


def recent_learnt(
    config: LineConfig | None,
    learner: LineLearner,
    view: LineView | None = None,
    max_age_s: float = CACHE_S,
) -> LearnedLine:
    """``learn_line`` of this learner, again only when the last is ``max_age_s``
    old; without a file, ``learn_unfiled_line`` of ``view`` (ValueError when the
    twin knows no station yet)."""
    now = time.monotonic()
    with _recent_lock:
        kept = _recent.get(id(learner))
        if kept is not None and kept[1] is learner and now - kept[0] < max_age_s:
            return kept[2]
    if config is not None:
        learnt = learn_line(config, learner)
    elif view is not None:
        learnt = learn_unfiled_line(view, learner)
    else:
        raise ValueError("a line without a file is learnt from the twin's view")
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


async def working_line(line: LineStack, asked: str | None) -> tuple[str, str, LineConfig]:
    """The line file a what-if, an optimizer run or an apply works on: (learned or
    nominal, why, the file). With a line file, ``choose_model``'s choice; without
    one, the learnt line once it is ``ready``, and 409 saying what it still lacks
    until then (503 when the app runs no line at all)."""
    if line.config is not None:
        return await choose_model(line, line.config, asked)
    if line.learner is None:
        raise HTTPException(status_code=503, detail="no line config: this API runs no line")
    if asked == "nominal":
        raise HTTPException(
            status_code=409,
            detail="model: nominal is the line file, and this twin has none; ask for learned",
        )
    try:
        learnt = await run_in_threadpool(recent_learnt, None, line.learner, line.twin.view())
        if not learnt.ready:  # it may have become ready since: look again
            learnt = await run_in_threadpool(
                recent_learnt, None, line.learner, line.twin.view(), 0.0
            )
    except ValueError as exc:
        raise HTTPException(
            status_code=409, detail=f"the learnt line is not ready yet: {exc}"
        ) from exc
    if not learnt.ready:
        missing = holding_back(learnt.not_learnt)
        raise HTTPException(
            status_code=409,
            detail="this twin has no line file: what-ifs and the optimizer run the line "
            "learnt from its messages, once every station's processing time is learnt "
            f"(from {learnt.min_samples} parts of each product). Not yet: "
            + "; ".join(missing[:6])
            + (f"; and {len(missing) - 6} more" if len(missing) > 6 else "")
            + " (GET /model)",
        )
    return (
        "learned",
        "no line file: the line learnt from its messages",
        LineConfig.model_validate(learnt.line),
    )


__all__ = ["CACHE_S", "choose_model", "recent_learnt", "working_line"]
