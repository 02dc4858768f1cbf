"""Live scoring: the running twin scores each part as it leaves the line.

Every ``period`` a micro-batch reads the parts that left since the last one from
the twin's history (``models.dataset.parts.from_history``: what came over MQTT), aligns
their rows to the defect model's features and scores them in one
``predict_proba`` call. A part's label (``defect``) is its inspection result,
known once it has left, so each score is checked at once: precision, recall and
F1 at the threshold are kept over the last ``window`` scored parts.

**Once and only once.** A row is final only when what it draws on is in the
store: a scrapped part's downstream columns come from the part just ahead of it
(docs/models.md), whose later visits may come after this part left, and the
store's writer commits in batches. So a part is scored once ``settle_s`` has
passed since it left, counted on the data's own clock: the newest part in the
store must have left ``settle_s`` after it, and so must the wall clock. An
ingest running behind (a loaded machine, a broker backlog) holds scoring back
instead of making it skip parts; the last parts before a stop wait for
production to resume. A high-water mark of (``left_at_ms``, ``part_id``) skips
parts already scored; a point that reaches the store more than ``settle_s``
behind the newest part is missed. ``from_history`` reads
``lookback_s`` of history before the window to find parts whole, which is most
of its cost; ``models.dataset.tail_cache.TailCache`` keeps what earlier steps
read (everything older than the last cutoff, taken as final) so a step reads
only what is new.

**Per-station defect risk.** A binary model (classes 0 and 1: defective or not)
says how likely a part is defective, not where: splitting that risk over
stations would be invented. Such a model gives the line's risk only (the mean
predicted probability over the window, ``LiveScoringView.defect_risk``) and the
stations show null. A station model, the same pipeline fitted on
``defect_station`` (classes "" for good parts and the station ids), gives
P(first failure at station s) for each part; a station's ``defect_risk`` is its
mean over the window's parts, and a part's risk is 1 - P("").

**Time.** Windows are in history time (Unix ms). A simulated plant running at
``speed`` times real time stamps live messages with the wall clock, so the
runtime passes windows divided by the speed in force (read at every step: a line
that paces itself changes it): the same simulated span as the (simulated-time)
history a model was trained on.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import numpy as np
import numpy.typing as npt

from models.dataset.parts import DEFAULT_LOOKBACK_S, DEFAULT_SENSOR_WINDOW_S, from_history
from models.dataset.tail_cache import TailCache
from twin.history.points import HistoryStore
from twin.state.line import TwinState
from twin.state.views import LiveScoringView, ModelInUse

log = logging.getLogger(__name__)
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DEFAULT_WINDOW = 200
DEFAULT_SETTLE_S = 1800.0


class DefectModel(Protocol):
    classes_: Any

    def predict_proba(self, X: Any) -> Any: ...


@dataclass(frozen=True)
class ScoredBatch:
    """The parts one micro-batch scored, in the order they left."""

    part_id: IntArray
    left_at_ms: IntArray
    defect: IntArray  # the inspection result
    risk: FloatArray  # the predicted probability of a defect


@dataclass
class _Scored:
    key: tuple[int, int]  # (left_at_ms, part_id)
    risk: float
    defect: int
    stations: FloatArray | None  # P(first failure at each station), station models only


@dataclass
class LiveScorer:
    """Scores the parts that left one line, a micro-batch per ``step``.

    ``feature_names`` are the columns the defect model was fitted on;
    ``stations`` the line's station order. Without a defect model it scores
    nothing. Windows and delays are in history seconds.
    """

    store: HistoryStore
    line: str
    stations: Sequence[str]
    model: DefectModel | None = None
    feature_names: Sequence[str] = ()
    threshold: float = 0.5
    window: int = DEFAULT_WINDOW
    start_ms: int = 0
    settle_s: float = DEFAULT_SETTLE_S
    lookback_s: float = DEFAULT_LOOKBACK_S
    sensor_window_s: float = DEFAULT_SENSOR_WINDOW_S
    # History seconds a line second now, read at every step (a simulated line's
    # speed in force changes while it paces itself): the three windows above are then
    # in line seconds. None: they are in history seconds.
    time_scale: Callable[[], float] | None = None
    defect_version: ModelInUse | None = None
    parts_scored: int = 0
    parts_unscored: int = 0
    errors: int = 0
    last_error: str | None = None
    last_step_ms: int | None = None
    _recent: deque[_Scored] = field(init=False)
    _high_water: tuple[int, int] = field(init=False)
    _cutoff_ms: int = field(init=False)
    _frontier_ms: int = field(init=False)  # when the newest part read left the line
    _cache: TailCache = field(init=False)
    # Where parts fail (a "defect-station" model beside a binary "defect" one):
    # per-station risk, while the binary model keeps the part's risk.
    where_model: DefectModel | None = None
    station_model: bool = field(init=False, default=False)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"window must be at least 1 part (got {self.window})")
        if self.model is not None and not self.feature_names:
            raise ValueError("a defect model needs the feature names it was fitted on")
        self._recent = deque(maxlen=self.window)
        self._high_water = (self.start_ms - 1, 2**62)
        self._cutoff_ms = self.start_ms
        self._frontier_ms = self.start_ms
        self._cache = TailCache(self.store)
        classes = [] if self.model is None else list(self.model.classes_)
        self.station_model = "" in classes
        if self.model is not None and not self.station_model and 1 not in classes:
            raise ValueError(f"a defect model's classes must be 0/1 or ''/stations: {classes}")
        if self.where_model is not None and "" not in list(self.where_model.classes_):
            raise ValueError("a station model's classes must be '' and station ids")

    # -- one micro-batch ------------------------------------------------------------------------
    def step(self, now_ms: int) -> ScoredBatch | None:
        """Score the parts that left at least ``settle_s`` before ``now_ms`` and are not
        scored yet. Never raises: failures are counted in ``errors``."""
        batch = None
        if self.model is not None:
            try:
                batch = self._score_parts(now_ms)
            except Exception as error:  # a model or store failure must not stop the twin
                self.failed("defect scoring", error)
        self.last_step_ms = now_ms
        return batch

    def failed(self, stage: str, error: Exception) -> None:
        with self._lock:
            self.errors += 1
            self.last_error = f"{stage}: {type(error).__name__}: {error}"
        # The traceback once; after that a line per failure, not a flood.
        log.warning("live %s failed: %s", stage, error, exc_info=self.errors == 1)

    def _scaled(self, seconds: float) -> float:
        """A window in history seconds."""
        return seconds if self.time_scale is None else seconds * self.time_scale()

    def _score_parts(self, now_ms: int) -> ScoredBatch | None:
        assert self.model is not None  # noqa: S101 - step checks
        settle_ms = int(self._scaled(self.settle_s) * 1000)
        if now_ms - settle_ms <= self._cutoff_ms:
            return None
        # Final: what lies before the last cutoff, which trailed the data by settle_s.
        self._cache.final_ms = self._cutoff_ms
        parts = from_history(
            cast(HistoryStore, self._cache),  # the queries from_history makes, cached
            self._cutoff_ms,
            now_ms,
            line=self.line,
            stations=self.stations,
            sensor_window_s=self._scaled(self.sensor_window_s),
            lookback_s=self._scaled(self.lookback_s),
        )
        if len(parts):
            self._frontier_ms = max(self._frontier_ms, int(parts.left_at_ms.max()))
        cutoff = min(now_ms, self._frontier_ms) - settle_ms
        if cutoff <= self._cutoff_ms:
            return None
        keys = list(zip(parts.left_at_ms.tolist(), parts.part_id.tolist(), strict=True))
        rows = np.array(
            [index for index, key in enumerate(keys) if self._high_water < key and key[0] < cutoff],
            dtype=np.intp,
        )
        self._cutoff_ms = cutoff
        if len(rows) == 0:
            return None
        fresh = parts.take(rows)
        self._high_water = max(self._high_water, keys[rows[-1]])
        try:
            probabilities = np.asarray(
                self.model.predict_proba(fresh.align(self.feature_names).features), dtype=float
            )
        except Exception:
            with self._lock:
                self.parts_unscored += len(fresh)
            raise
        classes = list(self.model.classes_)
        if self.station_model:
            risk = 1.0 - probabilities[:, classes.index("")]
            by_station = self._by_station(probabilities, classes)
        else:
            risk, by_station = probabilities[:, classes.index(1)], None
            if self.where_model is not None:
                where = np.asarray(
                    self.where_model.predict_proba(fresh.align(self.feature_names).features),
                    dtype=float,
                )
                by_station = self._by_station(where, list(self.where_model.classes_))
        with self._lock:
            for row in range(len(fresh)):
                self._recent.append(
                    _Scored(
                        (int(fresh.left_at_ms[row]), int(fresh.part_id[row])),
                        float(risk[row]),
                        int(fresh.defect[row]),
                        None if by_station is None else by_station[row],
                    )
                )
            self.parts_scored += len(fresh)
        return ScoredBatch(fresh.part_id, fresh.left_at_ms, fresh.defect, risk)

    def _by_station(self, probabilities: FloatArray, classes: list[Any]) -> FloatArray:
        """P(first failure at each station), in station order (0 for a station the
        model never saw fail)."""
        columns = [classes.index(s) if s in classes else -1 for s in self.stations]
        padded = np.column_stack([probabilities, np.zeros(len(probabilities))])
        return np.asarray(padded[:, columns], dtype=np.float64)

    @property
    def scored_until_ms(self) -> int:
        """Every part that left before this was scored (or skipped): where a scorer
        of newer models takes over."""
        return self._cutoff_ms

    # -- what it found --------------------------------------------------------------------------
    def defect_risk(self) -> dict[str, float]:
        """Per station, the mean P(first failure there) over the window (station models)."""
        with self._lock:
            rows = [part.stations for part in self._recent if part.stations is not None]
        if not rows:
            return {}
        means = np.mean(rows, axis=0)
        return {station: float(mean) for station, mean in zip(self.stations, means, strict=True)}

    def view(self) -> LiveScoringView:
        with self._lock:
            recent = list(self._recent)
            errors, last_error = self.errors, self.last_error
        risk = np.array([part.risk for part in recent])
        truth = np.array([part.defect for part in recent], dtype=bool)
        predicted = risk >= self.threshold
        hits = int(np.sum(predicted & truth))
        precision = hits / int(predicted.sum()) if predicted.any() else None
        recall = hits / int(truth.sum()) if truth.any() else None
        f1 = None
        if precision is not None and recall is not None:
            f1 = 2 * hits / (int(predicted.sum()) + int(truth.sum()))
        on = self.model is not None
        return LiveScoringView(
            status="on" if on else "off",
            reason=None if on else "no defect model",
            defect_model=self.defect_version,
            threshold=self.threshold if self.model is not None else None,
            window_size=self.window if self.model is not None else None,
            parts_in_window=len(recent),
            parts_scored=self.parts_scored,
            parts_unscored=self.parts_unscored,
            defect_risk=float(risk.mean()) if len(recent) else None,
            defect_rate=float(truth.mean()) if len(recent) else None,
            precision=precision,
            recall=recall,
            f1=f1,
            last_step_ms=self.last_step_ms,
            last_part_left_ms=recent[-1].key[0] if recent else None,
            errors=errors,
            last_error=last_error,
        )

    def publish(self, twin: TwinState) -> None:
        twin.set_live_scoring(self.view(), self.defect_risk())


__all__ = ["LiveScorer", "ScoredBatch"]
