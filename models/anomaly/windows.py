"""Telemetry windows: what a station's sensors did, one row of statistics per minute.

A station's telemetry, read from the twin's history (what arrived over MQTT),
is cut into windows of ``WINDOW_S`` (60 s). For each sensor field the station
reports, a window holds its mean, standard deviation, minimum, maximum, change
(last minus first sample), number of samples (``count``) and ``unchanged_s``:
how long the reading had not changed at the window's latest sample, a run that
may reach back over earlier windows. A window in which a field sent nothing has
``count`` 0 and NaN for the rest. ``models.anomaly.detector`` detects anomalies on them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from twin.history.points import SCHEMA, HistoryStore

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

WINDOW_S = 60.0
# The statistics of one telemetry field in one window, in feature order.
STATISTICS = ("mean", "std", "min", "max", "change", "count", "unchanged_s")


@dataclass(frozen=True)
class StationWindows:
    """One station's telemetry windows: a row of features per window."""

    station: str
    end_ms: IntArray  # when each window ends (exclusive); windows last window_ms
    features: FloatArray  # (n_windows, n_features); NaN where a field sent nothing
    feature_names: tuple[str, ...]
    window_ms: int = int(WINDOW_S * 1000)

    def __len__(self) -> int:
        return len(self.end_ms)

    def select(self, keep: npt.NDArray[np.bool_]) -> StationWindows:
        return StationWindows(
            self.station, self.end_ms[keep], self.features[keep], self.feature_names, self.window_ms
        )

    def outside(self, spans: Iterable[tuple[int, int]], margin_ms: int = 0) -> StationWindows:
        """The windows that overlap none of ``spans`` ([start, end) ms, widened by
        ``margin_ms`` on each side): the clean windows to fit a detector on."""
        keep = np.ones(len(self), dtype=bool)
        start = self.end_ms - self.window_ms
        for span_start, span_end in spans:
            keep &= ~((start < span_end + margin_ms) & (self.end_ms > span_start - margin_ms))
        return self.select(keep)

    def aligned(self, feature_names: Sequence[str]) -> FloatArray:
        """The features in the order of ``feature_names``; NaN for those it lacks."""
        if tuple(feature_names) == self.feature_names:
            return self.features
        index = {name: column for column, name in enumerate(self.feature_names)}
        out = np.full((len(self), len(feature_names)), np.nan)
        for column, name in enumerate(feature_names):
            if name in index:
                out[:, column] = self.features[:, index[name]]
        return out


def field_statistics(
    times_ms: IntArray, values: FloatArray, start_ms: int, window_ms: int, n_windows: int
) -> FloatArray:
    """The ``STATISTICS`` of one field's samples (sorted by time) per window: shape
    (n_windows, 7), NaN where the window has no sample (``count`` is then 0)."""
    out = np.full((n_windows, len(STATISTICS)), np.nan)
    out[:, 5] = 0.0
    index = (times_ms - start_ms) // window_ms
    inside = (index >= 0) & (index < n_windows)
    index, times, values = index[inside], times_ms[inside], values[inside]
    if len(values) == 0:
        return out
    firsts = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
    lasts = np.r_[firsts[1:] - 1, len(values) - 1]
    windows = index[firsts]
    count = np.bincount(index, minlength=n_windows).astype(np.float64)[windows]
    # Deviations from each window's first sample keep the variance exact.
    deviation = values - np.repeat(values[firsts], np.diff(np.r_[firsts, len(values)]))
    shift = np.add.reduceat(deviation, firsts) / count
    squares = np.add.reduceat(deviation * deviation, firsts) / count
    # How long the reading had not changed at each sample (a run may cross windows).
    changed = np.r_[True, values[1:] != values[:-1]]
    run_start = times[np.maximum.accumulate(np.where(changed, np.arange(len(values)), 0))]
    out[windows, 0] = values[firsts] + shift
    out[windows, 1] = np.sqrt(np.maximum(squares - shift * shift, 0.0))
    out[windows, 2] = np.minimum.reduceat(values, firsts)
    out[windows, 3] = np.maximum.reduceat(values, firsts)
    out[windows, 4] = values[lasts] - values[firsts]
    out[windows, 5] = count
    out[windows, 6] = np.maximum.reduceat((times - run_start) / 1000.0, firsts)
    return out


def telemetry_windows(
    store: HistoryStore,
    start_ms: int,
    end_ms: int,
    *,
    line: str | None = None,
    window_s: float = WINDOW_S,
    fields: Sequence[str] | None = None,
) -> dict[str, StationWindows]:
    """Per station, the statistics of each telemetry field over windows of ``window_s``
    from ``start_ms`` (the last window ends at or before ``end_ms``), read from history.

    Features are named ``<field>_<statistic>``; a station has the fields it ever
    reported in the span. Pass ``line`` when the store holds several lines.
    """
    window_ms = int(round(window_s * 1000))
    if window_ms <= 0:
        raise ValueError(f"window_s must be positive, got {window_s}")
    n_windows = max((end_ms - start_ms) // window_ms, 0)
    tags = {"line": line} if line is not None else None
    samples: dict[str, dict[str, list[tuple[IntArray, FloatArray]]]] = {}
    for field in fields or SCHEMA["telemetry"]:
        for result in store.query("telemetry", field, start_ms, end_ms, tags=tags):
            station = result.key.tags.get("station")
            if station is None or not result.windows:
                continue
            times = np.fromiter((w.start_ms for w in result.windows), np.int64)
            values = np.fromiter((w.value for w in result.windows), np.float64)
            samples.setdefault(station, {}).setdefault(field, []).append((times, values))
    stations: dict[str, StationWindows] = {}
    ends = start_ms + window_ms * np.arange(1, n_windows + 1, dtype=np.int64)
    for station, by_field in sorted(samples.items()):
        blocks: list[FloatArray] = []
        names: list[str] = []
        for field, parts in by_field.items():
            times = np.concatenate([t for t, _ in parts])
            values = np.concatenate([v for _, v in parts])
            order = np.argsort(times, kind="stable")
            blocks.append(
                field_statistics(times[order], values[order], start_ms, window_ms, n_windows)
            )
            names.extend(f"{field}_{statistic}" for statistic in STATISTICS)
        stations[station] = StationWindows(
            station, ends, np.hstack(blocks), tuple(names), window_ms
        )
    return stations
