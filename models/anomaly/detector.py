"""Anomaly and drift detection on the telemetry of each station.

A station's telemetry is cut into windows (``WINDOW_S``, 60 s). Each window is
described by statistics of each sensor field the station reports: its mean,
standard deviation, minimum, maximum, change (last minus first sample), number
of samples and how long the reading has not changed (``models.anomaly.windows``).
A stuck sensor repeats itself, a dropout sends nothing, a spike lifts the maximum,
an offset moves the level, and a worn tool lifts the vibration and lowers the
pressure of a running machine: each moves some of these statistics out of
their usual range.

``AnomalyDetector`` is a scikit-learn estimator: an ``IsolationForest`` fitted
on the clean windows of one station, with its alarm threshold set at a quantile
of the clean windows' scores, and a guard on each feature's clean range (a
forest cannot rank values beyond its training range above its extremes). Its
anomaly score is scaled so that 0 is the
median clean window and 1.0 the threshold. ``LineAnomalyDetector`` holds one per
station, scores a whole window matrix per station in one call (one row at a
time costs ~9 ms), and turns runs of windows above the threshold into
``Alarm`` s. The ground truth (injected faults, tool wear) and the evaluation
against it are in ``models.anomaly.truth``.

The windows come from the twin's history (``telemetry_windows``), that is from
what arrived over MQTT, never from the simulator's memory.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.ensemble import IsolationForest
from sklearn.utils.validation import check_is_fitted, validate_data

from models.anomaly.alarm import Alarm
from models.anomaly.truth import (
    DriftEvaluation,
    Episode,
    evaluate_alarms,
    fault_episodes,
    wear_episodes,
)
from models.anomaly.windows import (
    STATISTICS,
    WINDOW_S,
    StationWindows,
    field_statistics,
    telemetry_windows,
)
from models.missing import TakesMissing

__all__ = [
    "ALARM_SCORE",
    "SKOPS_TRUSTED",
    "STATISTICS",
    "WINDOW_S",
    "Alarm",
    "AnomalyDetector",
    "DriftEvaluation",
    "Episode",
    "LineAnomalyDetector",
    "StationWindows",
    "alarm_runs",
    "evaluate_alarms",
    "fault_episodes",
    "field_statistics",
    "telemetry_windows",
    "wear_episodes",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Alarm when a window's scaled anomaly score reaches this.
ALARM_SCORE = 1.0

# What skops must be told to trust to load a detector (the forest's trees included).
SKOPS_TRUSTED = [
    "models.anomaly.detector.AnomalyDetector",
    "models.anomaly.detector.LineAnomalyDetector",
    "sklearn.tree._tree.Tree",
]


class AnomalyDetector(TakesMissing, OutlierMixin, BaseEstimator):  # type: ignore[misc]
    """An isolation forest on the telemetry windows of one station, with a range guard.

    Fit it on clean windows only. An isolation forest cannot score a value beyond
    everything it was fitted on as more anomalous than the most extreme clean
    window (such a value follows that window's path down every tree), and a
    dropout (``count`` 0) or a sensor stuck for an hour (``unchanged_s``) is just
    that. So each feature also keeps its clean range, and a window that leaves it
    by ``reach`` times the feature's tail spread (the gap between its most
    extreme clean value and its ``tail`` quantile; at least 5% of its clean range and 1% of
    its magnitude)
    scores 1.0 too. The forest finds the combinations never seen together (a cool
    but steady temperature on a running machine); the range guard finds the
    values never seen at all.

    Missing values (a field that sent nothing) are filled with the clean median:
    ``count`` carries the dropout itself. ``anomaly_score`` is 0 for the median
    clean window and 1.0 at the alarm threshold (the forest's at the ``quantile``
    of the clean windows' scores); higher is more anomalous. ``score_samples``
    follows scikit-learn (higher is more normal): it is ``-anomaly_score``,
    ``offset_`` is -1 and ``predict`` gives -1 for an anomaly.
    """

    def __init__(
        self,
        n_estimators: int = 100,
        max_samples: int | float | str = "auto",
        quantile: float = 0.999,
        reach: float = 1.0,
        tail: float = 0.01,
        n_jobs: int | None = None,
        random_state: int | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.quantile = quantile
        self.reach = reach
        self.tail = tail
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(self, X: Any, y: Any = None) -> AnomalyDetector:
        if not 0.5 <= self.quantile < 1.0:
            raise ValueError(f"quantile must be in [0.5, 1), got {self.quantile}")
        if not 0.0 < self.tail < 0.5 or self.reach <= 0:
            raise ValueError(f"needs 0 < tail < 0.5 and reach > 0, got {self.tail}, {self.reach}")
        X = validate_data(self, X, ensure_all_finite="allow-nan", dtype=np.float64)
        finite = np.where(np.isfinite(X), X, np.nan)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
            fill = np.nanmedian(finite, axis=0)
            low, high = np.nanmin(finite, axis=0), np.nanmax(finite, axis=0)
            low_tail, high_tail = np.nanquantile(finite, [self.tail, 1.0 - self.tail], axis=0)
        self.fill_ = np.where(np.isnan(fill), 0.0, fill)
        self.low_ = np.where(np.isnan(low), self.fill_, low)
        self.high_ = np.where(np.isnan(high), self.fill_, high)
        magnitude = np.maximum(np.abs(self.high_), np.abs(self.low_))
        floor = np.maximum(np.maximum(0.05 * (self.high_ - self.low_), 0.01 * magnitude), 1e-9)
        self.low_spread_ = np.fmax(np.nan_to_num(low_tail - low), floor)
        self.high_spread_ = np.fmax(np.nan_to_num(high - high_tail), floor)
        filled = self._filled(X)
        self.forest_ = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=self.max_samples,
            n_jobs=self.n_jobs,
            random_state=self.random_state,
        ).fit(filled)
        raw = -self.forest_.score_samples(filled)
        self.center_ = float(np.median(raw))
        # Identical windows would make the scale zero; any spread above them will do.
        self.scale_ = max(float(np.quantile(raw, self.quantile)) - self.center_, 1e-6)
        self.offset_ = -ALARM_SCORE
        return self

    def _filled(self, X: FloatArray) -> FloatArray:
        return np.where(np.isfinite(X), X, self.fill_)

    def forest_score(self, X: Any) -> FloatArray:
        """The isolation forest's part of ``anomaly_score``."""
        check_is_fitted(self)
        X = validate_data(self, X, ensure_all_finite="allow-nan", dtype=np.float64, reset=False)
        raw = -self.forest_.score_samples(self._filled(X))
        return np.asarray((raw - self.center_) / self.scale_, dtype=np.float64)

    def range_score(self, X: Any) -> FloatArray:
        """The range guard's part: the largest excess over a feature's clean range, in
        tail spreads, divided by ``reach``."""
        check_is_fitted(self)
        X = validate_data(self, X, ensure_all_finite="allow-nan", dtype=np.float64, reset=False)
        filled = self._filled(X)
        above = (filled - self.high_) / self.high_spread_
        below = (self.low_ - filled) / self.low_spread_
        excess = np.maximum(np.maximum(above, below).max(axis=1, initial=0.0), 0.0)
        return np.asarray(excess / self.reach, dtype=np.float64)

    def anomaly_score(self, X: Any) -> FloatArray:
        """Higher is more anomalous: 0 the median clean window, 1.0 the alarm threshold."""
        return np.maximum(self.forest_score(X), self.range_score(X))

    def score_samples(self, X: Any) -> FloatArray:
        return -self.anomaly_score(X)

    def decision_function(self, X: Any) -> FloatArray:
        """Negative for an anomaly: ``score_samples - offset_``."""
        return self.score_samples(X) - self.offset_

    def predict(self, X: Any) -> npt.NDArray[np.int_]:
        return np.where(self.decision_function(X) >= 0, 1, -1)


class LineAnomalyDetector:
    """One ``AnomalyDetector`` per station of a line.

    An alarm needs ``persistence`` windows in a row at or above the threshold;
    runs less than ``merge_gap`` windows apart are one alarm.
    """

    def __init__(
        self,
        *,
        persistence: int = 2,
        merge_gap: int = 5,
        n_estimators: int = 100,
        quantile: float = 0.999,
        reach: float = 1.0,
        random_state: int | None = None,
    ) -> None:
        self.persistence = persistence
        self.reach = reach
        self.merge_gap = merge_gap
        self.n_estimators = n_estimators
        self.quantile = quantile
        self.random_state = random_state
        self.detectors_: dict[str, AnomalyDetector] = {}
        self.feature_names_: dict[str, tuple[str, ...]] = {}

    def fit(self, windows: Mapping[str, StationWindows]) -> LineAnomalyDetector:
        """Fit one detector per station on its (clean) windows."""
        self.detectors_, self.feature_names_ = {}, {}
        for station, station_windows in sorted(windows.items()):
            if len(station_windows) < 10:
                raise ValueError(
                    f"station {station!r}: too few windows to fit ({len(station_windows)})"
                )
            detector = AnomalyDetector(
                n_estimators=self.n_estimators,
                quantile=self.quantile,
                reach=self.reach,
                n_jobs=1,
                random_state=self.random_state,
            )
            self.detectors_[station] = detector.fit(station_windows.features)
            self.feature_names_[station] = station_windows.feature_names
        return self

    def score(self, windows: Mapping[str, StationWindows]) -> dict[str, FloatArray]:
        """Per station, the anomaly score of every window (1.0 = alarm threshold), in
        one batch per station. Stations without a fitted detector are skipped."""
        if not self.detectors_:
            raise ValueError("this LineAnomalyDetector is not fitted yet: call fit first")
        scores = {}
        for station, station_windows in windows.items():
            detector = self.detectors_.get(station)
            if detector is None or len(station_windows) == 0:
                continue
            matrix = station_windows.aligned(self.feature_names_[station])
            scores[station] = detector.anomaly_score(matrix)
        return scores

    def alarms(self, windows: Mapping[str, StationWindows]) -> list[Alarm]:
        """The alarms the windows raise, in time order."""
        scores = self.score(windows)
        alarms: list[Alarm] = []
        for station, score in scores.items():
            station_windows = windows[station]
            alarms.extend(
                alarm_runs(
                    station,
                    station_windows.end_ms,
                    score,
                    station_windows.window_ms,
                    persistence=self.persistence,
                    merge_gap=self.merge_gap,
                )
            )
        return sorted(alarms, key=lambda alarm: (alarm.raised_ms, alarm.station))


def alarm_runs(
    station: str,
    end_ms: IntArray,
    score: FloatArray,
    window_ms: int,
    *,
    persistence: int = 2,
    merge_gap: int = 5,
) -> list[Alarm]:
    """Alarms from one station's window scores: runs of at least ``persistence``
    consecutive windows at or above ``ALARM_SCORE``, runs closer than ``merge_gap``
    windows joined. Windows must be consecutive (``end_ms`` evenly spaced)."""
    hot = np.flatnonzero(score >= ALARM_SCORE)
    if len(hot) == 0:
        return []
    breaks = np.flatnonzero(np.diff(hot) > 1)
    run_starts = hot[np.r_[0, breaks + 1]]
    run_ends = hot[np.r_[breaks, len(hot) - 1]]
    alarms: list[Alarm] = []
    current: list[int] | None = None  # [first, last, raised] window indices
    for first, last in zip(run_starts.tolist(), run_ends.tolist(), strict=True):
        if last - first + 1 < persistence:
            continue
        raised = first + persistence - 1
        if current is not None and first - current[1] <= merge_gap:
            current[1] = last
            continue
        if current is not None:
            alarms.append(_alarm(station, end_ms, score, window_ms, current))
        current = [first, last, raised]
    if current is not None:
        alarms.append(_alarm(station, end_ms, score, window_ms, current))
    return alarms


def _alarm(
    station: str, end_ms: IntArray, score: FloatArray, window_ms: int, run: list[int]
) -> Alarm:
    first, last, raised = run
    peak = float(np.max(score[first : last + 1]))
    return Alarm(
        station,
        int(end_ms[first]) - window_ms,
        int(end_ms[last]),
        peak if math.isfinite(peak) else float("inf"),
        int(end_ms[raised]),
    )
