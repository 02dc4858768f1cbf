"""The twin's isolation-forest detector from before the sensor watch, kept as a
baseline of ``bench/alarms.py``: the product no longer ships it (docs/alarms.md
says why), and the comparison must still run it beside the watch on the same
streams.

Each station's telemetry is cut into minute windows, and each window holds per
sensor its mean, standard deviation, minimum, maximum, change, number of samples
and how long the reading had not changed (``STATISTICS``). Per station, an
``IsolationForest`` is fitted on the clean windows, with a guard on each
feature's clean range (a forest cannot rank a value beyond its training range
above the extremes). A window scores the larger of the two, each scaled so that
1.0 is the alarm threshold: the forest's at the 0.999 quantile of the clean
windows' scores, the guard's one tail spread (the gap between a feature's
extreme and its 1% quantile) beyond the clean range. An alarm needs two windows
in a row at or above 1.0; runs at most five windows apart are one alarm. It
names a station only.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from _alarm_baselines import Stream, _samples
from sklearn.ensemble import IsolationForest

from models.anomaly.sensor_truth import Raised

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

WINDOW_MS = 60_000
STATISTICS = ("mean", "std", "min", "max", "change", "count", "unchanged_s")
ALARM_SCORE = 1.0
QUANTILE = 0.999
TAIL = 0.01
PERSIST = 2
MERGE_GAP = 5
MIN_WINDOWS = 10


def window_statistics(
    times_ms: IntArray, values: FloatArray, start_ms: int, n_windows: int
) -> FloatArray:
    """The ``STATISTICS`` of one sensor's samples (in time order) per window: shape
    (n_windows, 7), NaN where a window has no sample (its count 0)."""
    out = np.full((n_windows, len(STATISTICS)), np.nan)
    out[:, 5] = 0.0
    index = (times_ms - start_ms) // WINDOW_MS
    inside = (index >= 0) & (index < n_windows)
    index, times, values = index[inside], times_ms[inside], values[inside]
    if len(values) == 0:
        return out
    firsts = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
    lasts = np.r_[firsts[1:] - 1, len(values) - 1]
    rows = index[firsts]
    count = np.bincount(index, minlength=n_windows).astype(np.float64)[rows]
    # Sums of deviations from each window's first sample keep the variance exact.
    deviation = values - np.repeat(values[firsts], np.diff(np.r_[firsts, len(values)]))
    shift = np.add.reduceat(deviation, firsts) / count
    squares = np.add.reduceat(deviation * deviation, firsts) / count
    # A run of one reading may reach back over earlier windows.
    changed = np.r_[True, values[1:] != values[:-1]]
    run_start = times[np.maximum.accumulate(np.where(changed, np.arange(len(values)), 0))]
    out[rows, 0] = values[firsts] + shift
    out[rows, 1] = np.sqrt(np.maximum(squares - shift * shift, 0.0))
    out[rows, 2] = np.minimum.reduceat(values, firsts)
    out[rows, 3] = np.maximum.reduceat(values, firsts)
    out[rows, 4] = values[lasts] - values[firsts]
    out[rows, 5] = count
    out[rows, 6] = np.maximum.reduceat((times - run_start) / 1000.0, firsts)
    return out


def _windows(
    stream: Stream, start_s: float, end_s: float
) -> tuple[IntArray, dict[str, dict[str, FloatArray]]]:
    """The windows' end times, and per station per feature its column."""
    start_ms = int(start_s * 1000)
    n_windows = int((end_s - start_s) // 60)
    ends = start_ms + WINDOW_MS * np.arange(1, n_windows + 1, dtype=np.int64)
    out: dict[str, dict[str, FloatArray]] = {}
    for (station, sensor), samples in sorted(_samples(stream, start_s, end_s).items()):
        times = np.array([round(t * 1000) for t, _ in samples], dtype=np.int64)
        values = np.array([v for _, v in samples], dtype=np.float64)
        block = window_statistics(times, values, start_ms, n_windows)
        columns = out.setdefault(station, {})
        for column, statistic in enumerate(STATISTICS):
            columns[f"{sensor}_{statistic}"] = block[:, column]
    return ends, out


@dataclass
class _StationForest:
    features: tuple[str, ...]
    fill: FloatArray
    low: FloatArray
    high: FloatArray
    low_spread: FloatArray
    high_spread: FloatArray
    forest: IsolationForest
    center: float = 0.0
    scale: float = 1.0

    def filled(self, x: FloatArray) -> FloatArray:
        return np.where(np.isfinite(x), x, self.fill)

    def scores(self, x: FloatArray) -> FloatArray:
        filled = self.filled(x)
        forest = (-self.forest.score_samples(filled) - self.center) / self.scale
        above = (filled - self.high) / self.high_spread
        below = (self.low - filled) / self.low_spread
        guard = np.maximum(np.maximum(above, below).max(axis=1, initial=0.0), 0.0)
        return np.asarray(np.maximum(forest, guard), dtype=np.float64)


def _fit_station(features: tuple[str, ...], x: FloatArray, seed: int) -> _StationForest:
    finite = np.where(np.isfinite(x), x, np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a sensor silent all along
        median = np.nanmedian(finite, axis=0)
        low, high = np.nanmin(finite, axis=0), np.nanmax(finite, axis=0)
        low_tail, high_tail = np.nanquantile(finite, [TAIL, 1.0 - TAIL], axis=0)
    fill = np.where(np.isnan(median), 0.0, median)
    low, high = np.where(np.isnan(low), fill, low), np.where(np.isnan(high), fill, high)
    magnitude = np.maximum(np.abs(high), np.abs(low))
    floor = np.maximum(np.maximum(0.05 * (high - low), 0.01 * magnitude), 1e-9)
    model = _StationForest(
        features,
        fill,
        low,
        high,
        np.fmax(np.nan_to_num(low_tail - low), floor),
        np.fmax(np.nan_to_num(high - high_tail), floor),
        IsolationForest(n_estimators=100, n_jobs=1, random_state=seed),
    )
    filled = model.filled(x)
    raw = -model.forest.fit(filled).score_samples(filled)
    model.center = float(np.median(raw))
    # Identical windows would make the scale zero; any spread above them will do.
    model.scale = max(float(np.quantile(raw, QUANTILE)) - model.center, 1e-6)
    return model


def _runs(hot: npt.NDArray[np.bool_]) -> list[list[int]]:
    """[first, last, raised] window indices of each alarm: runs of at least
    ``PERSIST`` hot windows, raised at the ``PERSIST``-th, runs at most
    ``MERGE_GAP`` windows after an alarm's last joined to it."""
    alarms: list[list[int]] = []
    began: int | None = None
    for index, flag in enumerate([*hot.tolist(), False]):
        if flag and began is None:
            began = index
        elif not flag and began is not None:
            first, last, began = began, index - 1, None
            if last - first + 1 < PERSIST:
                continue
            if alarms and first - alarms[-1][1] <= MERGE_GAP:
                alarms[-1][1] = last
            else:
                alarms.append([first, last, first + PERSIST - 1])
    return alarms


@dataclass
class ForestBaseline:
    seed: int
    stations: dict[str, _StationForest] = field(default_factory=dict)

    def fit(self, stream: Stream, start_s: float, end_s: float) -> ForestBaseline:
        _, windows = _windows(stream, start_s, end_s)
        for station, columns in windows.items():
            x = np.column_stack(list(columns.values()))
            if len(x) < MIN_WINDOWS:
                raise ValueError(f"station {station!r}: too few windows to fit ({len(x)})")
            self.stations[station] = _fit_station(tuple(columns), x, self.seed)
        return self

    def alarms(self, stream: Stream, start_s: float, end_s: float) -> list[Raised]:
        ends, windows = _windows(stream, start_s, end_s)
        out = []
        for station, columns in windows.items():
            model = self.stations.get(station)
            if model is None or len(ends) == 0:
                continue
            missing = np.full(len(ends), np.nan)
            x = np.column_stack([columns.get(name, missing) for name in model.features])
            for first, last, raised in _runs(model.scores(x) >= ALARM_SCORE):
                began, raised_ms, ended = (int(ends[i]) for i in (first, raised, last))
                began -= WINDOW_MS
                out.append(
                    Raised(station, "", began / 1000, raised_ms / 1000, ended / 1000, "forest")
                )
        return sorted(out, key=lambda alarm: (alarm.raised_s, alarm.station))


def forest_alarms(
    stream: Stream, train: tuple[float, float], test: tuple[float, float], seed: int
) -> list[Raised]:
    """The forest fitted on the ``train`` span, its alarms over ``test``."""
    return ForestBaseline(seed).fit(stream, *train).alarms(stream, *test)
