"""The baselines ``bench/alarms.py`` sets beside the sensor watch, on the same streams.

- ``BandBaseline``: each sensor's clean minimum and maximum, widened by 10% of
  their span; an alarm while a reading is outside, naming that sensor.
- ``PcaBaseline``: the textbook multivariate monitor. Per station, each telemetry
  message gives a vector of the latest reading of every sensor, standardised on
  clean history; PCA keeps the components that explain 90% of the variance, and
  Hotelling's T² and the squared prediction error (SPE, Q) of each vector are
  set against limits at a quantile of the clean ones. An alarm after ``persist``
  vectors in a row over a limit, naming the sensor with the largest share of the
  SPE (of T² when only T² is over).

The third, the isolation forest the twin ran before the watch, is in ``_forest_baseline``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel

from models.anomaly.sensor_truth import Raised
from twin.contract import SENSOR_FIELDS, Telemetry

FloatArray = npt.NDArray[np.float64]
Stream = Sequence[tuple[str | None, BaseModel]]


def _samples(
    stream: Stream, start_s: float, end_s: float
) -> dict[tuple[str, str], list[tuple[float, float]]]:
    out: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for station, message in stream:
        if station is None or not isinstance(message, Telemetry):
            continue
        t = message.sim_time_s
        if not start_s <= t < end_s:
            continue
        values = message.__dict__
        for name in SENSOR_FIELDS:
            value = values[name]
            if value is not None:
                out.setdefault((station, name), []).append((t, value))
    return out


def _by_station(
    samples: dict[tuple[str, str], list[tuple[float, float]]],
) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for key in samples:
        out.setdefault(key[0], []).append(key)
    return out


@dataclass
class BandBaseline:
    widen: float = 0.10
    clear_samples: int = 3
    bands: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)

    def fit(self, stream: Stream, start_s: float, end_s: float) -> BandBaseline:
        for key, samples in _samples(stream, start_s, end_s).items():
            values = [v for _, v in samples]
            low, high = min(values), max(values)
            span = (high - low) or abs(high) or 1.0
            self.bands[key] = (low - self.widen * span, high + self.widen * span)
        return self

    def alarms(self, stream: Stream, start_s: float, end_s: float) -> list[Raised]:
        out: list[Raised] = []
        for key, samples in sorted(_samples(stream, start_s, end_s).items()):
            band = self.bands.get(key)
            if band is None:
                continue
            low, high = band
            since: float | None = None
            inside = 0
            for t, value in samples:
                if value < low or value > high:
                    inside = 0
                    if since is None:
                        since = t
                elif since is not None:
                    inside += 1
                    if inside >= self.clear_samples:
                        out.append(Raised(key[0], key[1], since, since, t, "out_of_range"))
                        since = None
            if since is not None:
                out.append(Raised(key[0], key[1], since, since, None, "out_of_range"))
        return out


@dataclass
class _StationPca:
    sensors: tuple[str, ...]
    mean: FloatArray
    scale: FloatArray
    loadings: FloatArray  # (k, p)
    variances: FloatArray  # (k,)
    t2: FloatArray = field(default_factory=lambda: np.zeros(0))  # clean T² (sorted)
    spe: FloatArray = field(default_factory=lambda: np.zeros(0))


def _vectors(
    stream: Stream, start_s: float, end_s: float, sensors: dict[str, tuple[str, ...]]
) -> dict[str, tuple[list[float], list[list[float]]]]:
    """Per station, the latest reading of each of its sensors at each of its messages
    (from its first message that has them all)."""
    latest: dict[str, dict[str, float]] = {}
    out: dict[str, tuple[list[float], list[list[float]]]] = {}
    for station, message in stream:
        if station is None or not isinstance(message, Telemetry):
            continue
        values = message.__dict__
        mine = latest.setdefault(station, {})
        for name in SENSOR_FIELDS:
            value = values[name]
            if value is not None:
                mine[name] = value
        t = message.sim_time_s
        if not start_s <= t < end_s:
            continue
        names = sensors.get(station)
        if not names or any(n not in mine for n in names):
            continue
        times, rows = out.setdefault(station, ([], []))
        times.append(t)
        rows.append([mine[n] for n in names])
    return out


@dataclass
class PcaBaseline:
    explained: float = 0.90
    quantile: float = 0.9999
    persist: int = 3
    clear_samples: int = 3
    stations: dict[str, _StationPca] = field(default_factory=dict)

    def fit(self, stream: Stream, start_s: float, end_s: float) -> PcaBaseline:
        names = {
            station: tuple(sorted(sensor for s, sensor in keys))
            for station, keys in _by_station(_samples(stream, start_s, end_s)).items()
        }
        for station, (_, rows) in _vectors(stream, start_s, end_s, names).items():
            x = np.asarray(rows, dtype=np.float64)
            if len(x) < 50:
                continue
            mean = x.mean(axis=0)
            scale = np.maximum(x.std(axis=0), 1e-9)
            z = (x - mean) / scale
            _, singular, vt = np.linalg.svd(z, full_matrices=False)
            variances = singular**2 / (len(z) - 1)
            share = np.cumsum(variances) / variances.sum()
            k = min(int(np.searchsorted(share, self.explained) + 1), len(variances))
            model = _StationPca(
                names[station], mean, scale, vt[:k], np.maximum(variances[:k], 1e-12)
            )
            t2, spe, _ = self._statistics(model, x)
            model.t2 = np.sort(t2)
            model.spe = np.sort(spe)
            self.stations[station] = model
        return self

    @staticmethod
    def _statistics(model: _StationPca, x: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        z = (x - model.mean) / model.scale
        scores = z @ model.loadings.T
        t2 = np.sum(scores**2 / model.variances, axis=1)
        residual = z - scores @ model.loadings
        spe = np.sum(residual**2, axis=1)
        return t2, spe, residual

    def limits(self, model: _StationPca) -> tuple[float, float]:
        return (
            float(np.quantile(model.t2, self.quantile)),
            float(np.quantile(model.spe, self.quantile)),
        )

    def alarms(self, stream: Stream, start_s: float, end_s: float) -> list[Raised]:
        sensors = {s: m.sensors for s, m in self.stations.items()}
        out: list[Raised] = []
        for station, (times, rows) in _vectors(stream, start_s, end_s, sensors).items():
            model = self.stations[station]
            x = np.asarray(rows, dtype=np.float64)
            t2, spe, residual = self._statistics(model, x)
            t2_limit, spe_limit = self.limits(model)
            over = (t2 > t2_limit) | (spe > spe_limit)
            run = 0
            quiet = 0
            alarm: tuple[float, float, str] | None = None
            z = (x - model.mean) / model.scale
            for i, flag in enumerate(over):
                if alarm is None:
                    run = run + 1 if flag else 0
                    if run >= self.persist:
                        if spe[i] > spe_limit:
                            named = int(np.argmax(residual[i] ** 2))
                        else:
                            contribution = (
                                (z[i] @ model.loadings.T / model.variances)
                                @ (model.loadings)
                                * z[i]
                            )
                            named = int(np.argmax(contribution))
                        alarm = (times[i - self.persist + 1], times[i], model.sensors[named])
                        quiet = 0
                    continue
                quiet = quiet + 1 if not flag else 0
                if quiet >= self.clear_samples:
                    out.append(Raised(station, alarm[2], alarm[0], alarm[1], times[i], "pca"))
                    alarm = None
                    run = 0
            if alarm is not None:
                out.append(Raised(station, alarm[2], alarm[0], alarm[1], None, "pca"))
        return out
