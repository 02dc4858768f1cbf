"""The latest learnt line of each learner, for what asks often.

``recent_learnt`` answers ``learn_line`` again only when the last answer is
``CACHE_S`` seconds old: the alarms (every dashboard asks every few seconds)
and the shadow forecasts (``api.shadow``) read it. ``GET /model`` always learns
afresh.
"""

from __future__ import annotations

import threading
import time

from twin.config.line import LineConfig
from twin.learning.line import LearnedLine, learn_line
from twin.learning.observer import LineLearner

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


__all__ = ["CACHE_S", "recent_learnt"]
