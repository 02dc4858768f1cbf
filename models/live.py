"""Live scoring: the running twin scores each part as it leaves the line.

Every ``period`` a micro-batch reads the parts that left since the last one from
the twin's history (``models.dataset.parts.from_history``: what came over MQTT), aligns
their rows to the defect model's features and scores them in one
``predict_proba`` call. A part's label (``defect``) is its inspection result,
known once it has left, so each score is checked at once: precision, recall and
F1 at the threshold are kept over the last ``window`` scored parts. Each step
also scores every station's latest complete telemetry window with the anomaly
detector (``models.anomaly.detector``), in one batched call.

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
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import numpy as np
import numpy.typing as npt

from models.dataset.parts import DEFAULT_LOOKBACK_S, DEFAULT_SENSOR_WINDOW_S, from_history
from models.dataset.tail_cache import TailCache
from twin.history.points import HistoryStore
from twin.state.line import TwinState
from twin.state.views import LiveScoringView, ModelInUse
from twin.workers import Worker

log = logging.getLogger(__name__)
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DEFAULT_WINDOW = 200
DEFAULT_SETTLE_S = 1800.0
DEFAULT_ANOMALY_WINDOW_S = 60.0


class DefectModel(Protocol):
    classes_: Any

    def predict_proba(self, X: Any) -> Any: ...


class AnomalyModel(Protocol):
    def score(self, windows: Mapping[str, Any]) -> Mapping[str, FloatArray]: ...


# (store, start_ms, end_ms) -> per station, its telemetry windows (models.anomaly.detector)
WindowReader = Callable[[HistoryStore, int, int], Mapping[str, Any]]


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
    ``stations`` the line's station order. Without a defect model only the
    anomaly scores are kept. Windows and delays are in history seconds.
    """

    store: HistoryStore
    line: str
    stations: Sequence[str]
    model: DefectModel | None = None
    feature_names: Sequence[str] = ()
    anomaly: AnomalyModel | None = None
    windows_of: WindowReader | None = None
    threshold: float = 0.5
    window: int = DEFAULT_WINDOW
    start_ms: int = 0
    settle_s: float = DEFAULT_SETTLE_S
    lookback_s: float = DEFAULT_LOOKBACK_S
    sensor_window_s: float = DEFAULT_SENSOR_WINDOW_S
    anomaly_window_s: float = DEFAULT_ANOMALY_WINDOW_S
    # History seconds a line second now, read at every step (a simulated line's
    # speed in force changes while it paces itself): the four windows above are then
    # in line seconds. None: they are in history seconds.
    time_scale: Callable[[], float] | None = None
    defect_version: ModelInUse | None = None
    anomaly_version: ModelInUse | None = None
    parts_scored: int = 0
    parts_unscored: int = 0
    errors: int = 0
    last_error: str | None = None
    last_step_ms: int | None = None
    anomaly_scores: dict[str, float] = field(default_factory=dict)
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
        scored yet, and each station's latest telemetry window. Never raises: failures
        are counted in ``errors``."""
        batch = None
        if self.model is not None:
            try:
                batch = self._score_parts(now_ms)
            except Exception as error:  # a model or store failure must not stop the twin
                self._failed("defect scoring", error)
        if self.anomaly is not None:
            try:
                self._score_telemetry(now_ms)
            except Exception as error:
                self._failed("anomaly scoring", error)
        self.last_step_ms = now_ms
        return batch

    def _failed(self, stage: str, error: Exception) -> None:
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

    def _score_telemetry(self, now_ms: int) -> None:
        assert self.anomaly is not None  # noqa: S101 - step checks
        window_s = self._scaled(self.anomaly_window_s)
        window_ms = max(1, int(window_s * 1000))
        # The latest window that is complete (the writer commits in batches), on a grid
        # so that successive steps see the same windows.
        end_ms = (now_ms - window_ms // 2) // window_ms * window_ms
        reader = self.windows_of or _telemetry_windows(self.line, window_s)
        scores = self.anomaly.score(reader(self.store, end_ms - window_ms, end_ms))
        latest = {station: float(s[-1]) for station, s in scores.items() if len(s)}
        with self._lock:
            self.anomaly_scores = latest

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
        on = self.model is not None or self.anomaly is not None
        return LiveScoringView(
            status="on" if on else "off",
            reason=None if on else "no defect or anomaly model",
            defect_model=self.defect_version,
            anomaly_model=self.anomaly_version,
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
        twin.set_live_scoring(self.view(), self.defect_risk(), dict(self.anomaly_scores))


def load_scorer(
    registry: Any,
    store: HistoryStore,
    line: str,
    stations: Sequence[str],
    *,
    time_scale: float | Callable[[], float] = 1.0,
    **options: Any,
) -> tuple[LiveScorer | None, str | None]:
    """A scorer with the active "defect" and "anomaly" models of a ``ModelRegistry``,
    or (None, why not). ``time_scale``: history seconds per simulated second (1/speed
    for a simulated plant stamping with the wall clock), or a function giving it now
    (1/the speed in force of a line that paces itself); the models' windows, the
    lookback and the settling delay are scaled by it. ``options`` go to ``LiveScorer``."""
    from models.registry.store import RegistryError

    found: dict[str, tuple[Any, ModelInUse, dict[str, Any]]] = {}
    problems = []
    for name in ("defect", "defect-station", "anomaly"):
        try:
            if name not in registry.names() or registry.active(name) is None:
                continue
            model, version = registry.load(name)
        except RegistryError as error:
            problems.append(str(error))
            continue
        kind = "station" if "" in list(getattr(model, "classes_", [])) else "binary"
        in_use = ModelInUse(
            name=name, version=version.version, kind=kind if name == "defect" else None
        )
        found[name] = (model, in_use, version.card)
    if not found:
        why = "; ".join(problems) or f"no registered defect or anomaly model in {registry.root}"
        return None, why
    defect = found.get("defect")
    anomaly = found.get("anomaly")
    card: dict[str, Any] = defect[2] if defect is not None else {}
    data, metrics = card.get("data", {}), card.get("metrics", {})
    anomaly_card = anomaly[2] if anomaly is not None else {}
    anomaly_window_s = (anomaly_card.get("parameters") or {}).get(
        "window_s", DEFAULT_ANOMALY_WINDOW_S
    )
    scale = 1.0 if callable(time_scale) else time_scale
    try:
        scorer = LiveScorer(
            store,
            line,
            stations,
            model=defect[0] if defect is not None else None,
            where_model=_where_model(found, data.get("feature_names")),
            feature_names=tuple(data.get("feature_names", ())),
            anomaly=anomaly[0] if anomaly is not None else None,
            threshold=float(metrics.get("threshold", 0.5)),
            settle_s=options.pop("settle_s", DEFAULT_SETTLE_S) * scale,
            lookback_s=options.pop("lookback_s", DEFAULT_LOOKBACK_S) * scale,
            sensor_window_s=float(data.get("sensor_window_s", DEFAULT_SENSOR_WINDOW_S)) * scale,
            anomaly_window_s=float(anomaly_window_s) * scale,
            time_scale=time_scale if callable(time_scale) else None,
            defect_version=defect[1] if defect is not None else None,
            anomaly_version=anomaly[1] if anomaly is not None else None,
            **options,
        )
    except ValueError as error:  # a card without its feature names, odd classes
        return None, f"the registered models cannot score: {error}"
    return scorer, None


def _where_model(
    found: Mapping[str, tuple[Any, ModelInUse, dict[str, Any]]], feature_names: Any
) -> DefectModel | None:
    """The "defect-station" model, when it was trained on the defect model's features
    (``factory-twin train`` registers both from the same parts)."""
    where = found.get("defect-station")
    if where is None or where[2].get("data", {}).get("feature_names") != feature_names:
        return None
    return cast(DefectModel, where[0])


def _telemetry_windows(line: str, window_s: float) -> WindowReader:
    from models.anomaly.detector import telemetry_windows

    def read(store: HistoryStore, start_ms: int, end_ms: int) -> Mapping[str, Any]:
        return telemetry_windows(store, start_ms, end_ms, line=line, window_s=window_s)

    return read


MODEL_NAMES = ("defect", "defect-station", "anomaly")


def active_versions(registry: Any) -> Callable[[], tuple[int | None, ...]]:
    """What a ``ScoringLoop`` watches: the active version of each model the scorer
    loads, read from the registry's index files (a few small reads)."""

    def read() -> tuple[int | None, ...]:
        return tuple(registry.active_version(name) for name in MODEL_NAMES)

    return read


# (start_ms) -> a scorer of the registry's active models from start_ms, or (None, why not)
Reload = Callable[[int], tuple[LiveScorer | None, str | None]]


class ScoringLoop:
    """Runs ``scorer.step`` every ``period_s`` on a thread of its own and publishes
    what it found to the twin. Nothing it meets stops it or the process.

    With ``watch`` and ``reload`` it also follows the registry: when the active
    versions ``watch`` reads change, ``reload`` builds a scorer of the new models
    before the next step, so a newly activated model scores within one period, no
    restart needed. The new scorer starts where the old one stopped (no part is
    scored twice); its rolling figures start afresh. Without a scorer (no model
    yet) the loop keeps watching, and the twin shows ``reason``, or while
    ``training`` is set, that models are being trained.

    ``start(load=...)`` loads the first models on the loop's thread: loading one
    imports scikit-learn and reads its file (a second or two), which the caller
    (the stack's start, before the API answers) need not wait for. ``loaded`` is
    set once that first load ended, with models or without."""

    def __init__(
        self,
        scorer: LiveScorer | None,
        twin: TwinState,
        period_s: float,
        *,
        clock: Callable[[], float] = time.time,
        watch: Callable[[], Any] | None = None,
        reload: Reload | None = None,
        reason: str | None = None,
        start_ms: int | None = None,
    ) -> None:
        self.scorer = scorer
        self.twin = twin
        self.period_s = period_s
        self.clock = clock
        self.watch = watch
        self.reload = reload
        self.reason = reason
        self.training: str | None = None
        self.start_ms = int(clock() * 1000) if start_ms is None else start_ms
        self.steps = 0
        self.reloads = 0
        self._watched = self._read_watch()
        self._load: Callable[[], tuple[LiveScorer | None, str | None]] | None = None
        self._worker = Worker("live-scoring", self._run)
        self._stop = self._worker.stopping
        self.loaded = threading.Event()

    def start(self, load: Callable[[], tuple[LiveScorer | None, str | None]] | None = None) -> None:
        """Run the loop; with ``load``, its thread first takes the scorer and the reason
        that ``load`` returns (the twin shows ``reason`` meanwhile)."""
        self._publish()
        if load is None:
            self.loaded.set()
        self._load = load
        self._worker.start()

    @property
    def alive(self) -> bool:
        """The loop's thread runs (started, and not stopped or ended)."""
        return self._worker.alive

    def set_training(self, note: str | None, reason: str | None = None) -> None:
        """``note``: what is being trained (the twin shows status "training" while there
        is no model); None when it ended, with ``reason`` why scoring is still off."""
        self.training = note
        if reason is not None:
            self.reason = reason
        if self.scorer is None:
            self._publish()

    def _run(self, stop: threading.Event) -> None:
        if self._load is not None:
            self._load_first(self._load)
        while not stop.wait(self.period_s):
            self.run_once()

    def _load_first(self, load: Callable[[], tuple[LiveScorer | None, str | None]]) -> None:
        # What is active now is what the load finds: a later change is the watch's.
        self._watched = self._read_watch()
        try:
            scorer, reason = load()
        except Exception as error:  # the twin runs without models rather than not at all
            log.exception("live scoring could not start")
            scorer, reason = None, f"could not load the models: {error}"
        if self.scorer is None and not self._stop.is_set():
            self.scorer, self.reason = scorer, reason
            if scorer is not None:
                self.training = None
                log.info("live scoring uses %s", _versions(scorer))
            self._publish()
        self.loaded.set()

    def _read_watch(self) -> Any:
        if self.watch is None:
            return None
        try:
            return self.watch()
        except Exception:  # an unreadable index is the reload's to report
            log.debug("reading the registry's active versions failed", exc_info=True)
            return None

    def _follow_registry(self) -> None:
        if self.reload is None:
            return
        seen = self._read_watch()
        if seen == self._watched:
            return
        self._watched = seen
        old = self.scorer
        start_ms = old.scored_until_ms if old is not None else self.start_ms
        try:
            scorer, reason = self.reload(start_ms)
        except Exception as error:  # a model that cannot load must not stop the loop
            scorer, reason = None, f"could not load the models: {error}"
        if scorer is None and old is not None:
            # Keep scoring with the models that work; say why the new ones did not load.
            old._failed("loading the newly active models", RuntimeError(reason))
            return
        self.scorer, self.reason = scorer, reason
        self.reloads += 1
        if scorer is not None:
            self.training = None
            log.info("live scoring now uses %s", _versions(scorer))

    def _publish(self) -> None:
        scorer = self.scorer
        if scorer is not None:
            view = scorer.view()
            if scorer.model is None:  # anomaly scores only: say why there is no risk
                view = view.model_copy(update={"reason": self.reason or "no active defect model"})
            self.twin.set_live_scoring(view, scorer.defect_risk(), dict(scorer.anomaly_scores))
            return
        if self.training is not None:
            idle = LiveScoringView(status="training", reason=self.training)
        else:
            idle = LiveScoringView(reason=self.reason)
        # Only a change is news: the twin's views (and the stream) stay put meanwhile.
        if idle != self.twin.live_scoring():
            self.twin.set_live_scoring(idle)

    def run_once(self) -> None:
        try:
            self._follow_registry()
            if self.scorer is not None:
                self.scorer.step(int(self.clock() * 1000))
            self._publish()
        except Exception as error:  # step never raises; the rest is guarded all the same
            if self.scorer is not None:
                self.scorer._failed("publishing", error)
            else:
                log.warning("live scoring failed: %s", error)
        self.steps += 1

    def stop(self, timeout: float = 10.0) -> None:
        self._worker.stop(timeout)


def _versions(scorer: LiveScorer) -> str:
    found = [scorer.defect_version, scorer.anomaly_version]
    return ", ".join(f"{item.name} v{item.version}" for item in found if item is not None)


__all__ = [
    "MODEL_NAMES",
    "LiveScorer",
    "ScoredBatch",
    "ScoringLoop",
    "active_versions",
    "load_scorer",
]
