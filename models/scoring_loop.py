"""The running twin's scoring loop: it keeps a ``models.live.LiveScorer`` of the
registry's active models stepping, and follows the registry.

``load_scorer`` builds a scorer of the active "defect" and "defect-station"
models; ``ScoringLoop`` steps it on a thread of its own and publishes what it
found to the twin, and builds a new one when the active versions change
(``active_versions`` reads them). Nothing it meets stops it or the process. A
registry of an earlier version may hold an "anomaly" model (the drift detector
the sensor watch replaced): it is not loaded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from models.dataset.parts import DEFAULT_LOOKBACK_S, DEFAULT_SENSOR_WINDOW_S
from models.live import DEFAULT_SETTLE_S, DefectModel, LiveScorer
from twin.history.points import HistoryStore
from twin.state.line import TwinState
from twin.state.views import LiveScoringView, ModelInUse
from twin.workers import Worker

log = logging.getLogger(__name__)

# The models a scorer loads, in the registry's names.
MODEL_NAMES = ("defect", "defect-station")


def load_scorer(
    registry: Any,
    store: HistoryStore,
    line: str,
    stations: Sequence[str],
    *,
    time_scale: float | Callable[[], float] = 1.0,
    **options: Any,
) -> tuple[LiveScorer | None, str | None]:
    """A scorer with the active "defect" and "defect-station" models of a ``ModelRegistry``,
    or (None, why not). ``time_scale``: history seconds per simulated second (1/speed
    for a simulated plant stamping with the wall clock), or a function giving it now
    (1/the speed in force of a line that paces itself); the sensor window, the
    lookback and the settling delay are scaled by it. ``options`` go to ``LiveScorer``."""
    from models.registry.store import RegistryError

    found: dict[str, tuple[Any, ModelInUse, dict[str, Any]]] = {}
    problems = []
    for name in MODEL_NAMES:
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
        why = "; ".join(problems) or f"no registered defect model in {registry.root}"
        return None, why
    defect = found.get("defect")
    card: dict[str, Any] = defect[2] if defect is not None else {}
    data, metrics = card.get("data", {}), card.get("metrics", {})
    scale = 1.0 if callable(time_scale) else time_scale
    try:
        scorer = LiveScorer(
            store,
            line,
            stations,
            model=defect[0] if defect is not None else None,
            where_model=_where_model(found, data.get("feature_names")),
            feature_names=tuple(data.get("feature_names", ())),
            threshold=float(metrics.get("threshold", 0.5)),
            settle_s=options.pop("settle_s", DEFAULT_SETTLE_S) * scale,
            lookback_s=options.pop("lookback_s", DEFAULT_LOOKBACK_S) * scale,
            sensor_window_s=float(data.get("sensor_window_s", DEFAULT_SENSOR_WINDOW_S)) * scale,
            time_scale=time_scale if callable(time_scale) else None,
            defect_version=defect[1] if defect is not None else None,
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
            old.failed("loading the newly active models", RuntimeError(reason))
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
            if scorer.model is None:  # a station model alone: say why there is no risk
                view = view.model_copy(update={"reason": self.reason or "no active defect model"})
            self.twin.set_live_scoring(view, scorer.defect_risk())
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
                self.scorer.failed("publishing", error)
            else:
                log.warning("live scoring failed: %s", error)
        self.steps += 1

    def stop(self, timeout: float = 10.0) -> None:
        self._worker.stop(timeout)


def _versions(scorer: LiveScorer) -> str:
    found = scorer.defect_version
    return "no defect model" if found is None else f"{found.name} v{found.version}"


__all__ = ["MODEL_NAMES", "ScoringLoop", "active_versions", "load_scorer"]
