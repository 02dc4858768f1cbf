"""Sensor alarms on held-out seeds: the figures docs/alarms.md and the README quote.

Each run is one line template on one seed, 72 simulated hours through the
publisher's signal model into an ingest (``sensors.loopback``, no broker):

- hours 0-24 are the line's clean history: the sensor watch learns each sensor's
  expectation from them (``models.anomaly.expected``), the baselines their bands,
  PCA and forest;
- hours 24-48 are fault-free: every alarm there but a wear alarm during wear is false;
- hours 48-72 hold ``FAULTS`` injected sensor faults, one every three hours, each
  on a kind of sensor that moves on with the seed (``fault_plan``): offsets of 5
  and 20 noise standard deviations (two of them on a temperature), spikes of 15
  and 40 (a tenth of the samples), a stuck sensor and a dropout, each lasting 0.5
  to 1.5 h.

The watch's settings (its CUSUM slack and decision level, the spike level) and the
PCA's control limit are chosen on ``TUNING_SEEDS`` of the ``TUNED_ON`` templates
only, as the most sensitive whose false alarms stay at or below
``TUNING_FALSE_PER_DAY``. The figures come from ``REPORT_SEEDS``, which the choice
never saw, on those three templates, and from ``HELD_OUT_SEEDS`` of bottling, a
line the choice never saw at all (its stream is about 25 times the others', so it
runs fewer seeds). The messages that move no one's inputs are not kept
(``_Informative``). An alarm finds
a fault only if it names the faulty sensor; a wear alarm counts for wear only.
The baselines run on the same streams and spans: the band of each sensor's clean
range widened by 10%, PCA with Hotelling's T² and SPE, and the isolation-forest
detector the twin ran before the watch (``_forest_baseline``), which names a
station only (it is credited at the station, and so are the others in the
``station`` columns).

Run: ``.venv/bin/python bench/alarms.py`` (about 14 minutes on 2 cores);
``--quick`` runs 3 report seeds (2 of bottling) and a smaller grid.
Writes ``bench/results/alarms.json`` and the table in docs/alarms.md.
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _alarm_baselines import BandBaseline, PcaBaseline
from _forest_baseline import forest_alarms
from _results import emit
from _tables import update
from pydantic import BaseModel

from models.anomaly.expected import fit_expectations
from models.anomaly.sensor_truth import (
    Raised,
    Scored,
    SensorEpisode,
    fault_episodes,
    poisson_lower,
    poisson_upper,
    score_alarms,
    wear_episodes,
)
from models.anomaly.watch import SensorAlarm, SensorWatch, WatchSettings
from sensors.loopback import run_through_ingest
from twin.config.line import LineConfig, SensorFault, load_config, with_faults
from twin.contract import (
    SENSOR_FIELDS,
    PartFinished,
    PartStarted,
    StateChanged,
    StationState,
)

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = {
    "default": ROOT / "twin/lines/default.yaml",
    "cnc_cell": ROOT / "examples/lines/cnc_cell.yaml",
    "smt": ROOT / "examples/lines/smt.yaml",
    "bottling": ROOT / "examples/lines/bottling.yaml",
}
# The templates the settings are tuned on; the rest are held out whole (a line the
# settings never saw), reported on their own seeds.
TUNED_ON = ("default", "cnc_cell", "smt")
TRAIN_H, CLEAN_END_H, END_H = 24.0, 48.0, 72.0
WARMUP_S = 1800.0
TUNING_SEEDS = (101, 102)
REPORT_SEEDS = tuple(range(1, 11))
# Bottling's stream is about 25 times the others' (a bottle every half second, and
# a state change at every blocked or starved moment): it is held out of tuning and
# reported on fewer seeds, to keep the bench within its quarter of an hour.
HELD_OUT_SEEDS = {"bottling": REPORT_SEEDS[:4]}
TUNING_FALSE_PER_DAY = 0.1
WEAR_LEVEL = 0.5
# (mode, size in noise standard deviations); the last two offsets go on temperatures.
FAULTS = (
    ("offset", 5.0),
    ("offset", 20.0),
    ("spike", 15.0),
    ("spike", 40.0),
    ("stuck", 0.0),
    ("dropout", 0.0),
    ("offset", 5.0),
    ("offset", 20.0),
)
GRID = {
    "cusum_k": (1.0, 1.5, 2.0),
    "cusum_h": (10.0, 20.0),
    "spike_sd": (8.0, 12.0),
    "stuck_chance": (1e-10,),
}
QUICK_GRID = {
    "cusum_k": (1.0, 1.5),
    "cusum_h": (10.0, 20.0),
    "spike_sd": (8.0,),
    "stuck_chance": (1e-7, 1e-10),
}
Setting = tuple[float, ...]  # the values of GRID's settings, in its order
NAMES = tuple(GRID)
PCA_QUANTILES = (0.999, 0.9999, 0.99999, 1.0)
TARGETS = {
    "detection": 0.95,
    "false_per_day": 0.2,
    "false_per_day_upper": 0.5,
    "mean_delay_min": 3.0,
    "wear_delay_max_min": 10.0,
}


def fault_plan(config: LineConfig, seed: int) -> tuple[list[SensorFault], list[str]]:
    """The faults of a run: ``FAULTS`` in turn, one per slot. Each slot's kind of
    sensor moves on with the seed (the last two are temperatures), so that over the
    report seeds every mode meets every kind of sensor the line has; the station is
    drawn with ``seed`` among those with that kind."""
    rng = random.Random(seed * 7919 + 17)
    fitted: dict[str, list[tuple[str, float]]] = {}
    for station in config.stations:
        for name in SENSOR_FIELDS:
            spec = getattr(station.sensors, name)
            if spec is not None:
                noise = spec.noise_sd or spec.resolution or 0.01
                fitted.setdefault(name, []).append((station.id, noise))
    kinds = sorted(fitted)
    slot = (END_H - CLEAN_END_H) / len(FAULTS)
    faults, sizes = [], []
    for i, (mode, size) in enumerate(FAULTS):
        temperature = i >= len(FAULTS) - 2 and "temperature_c" in fitted
        sensor = "temperature_c" if temperature else kinds[(seed + i) % len(kinds)]
        station, noise = rng.choice(fitted[sensor])
        start = CLEAN_END_H + i * slot + rng.uniform(0.25, 1.0)
        duration = rng.uniform(0.5, 1.5)
        magnitude = size * noise * rng.choice((-1.0, 1.0))
        if sensor != "temperature_c" and magnitude < 0:
            magnitude = -magnitude  # a reading near zero cannot sag below it
        faults.append(
            SensorFault(
                station=station,
                sensor=sensor,
                mode=mode,
                start_h=round(start, 4),
                duration_h=round(duration, 4),
                magnitude=magnitude,
                probability=0.1,
            )
        )
        sizes.append(f"{size:g} sd" if size else "")
    return faults, sizes


@dataclass
class RunResult:
    template: str
    seed: int
    ours: dict[Setting, tuple[Scored, Scored]]  # settings -> clean, faulted
    band: tuple[Scored, Scored, Scored, Scored] | None = None  # clean, faulted, station-level x2
    pca: dict[float, tuple[Scored, Scored, Scored, Scored]] = field(default_factory=dict)
    forest: tuple[Scored, Scored] | None = None  # station-level
    ours_station: tuple[Scored, Scored] | None = None
    kinds: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    # Wear alarms after the learning day, and those past the line's renewal plan
    # (annunciated; the rest the twin holds back as the line's own maintenance).
    wear_alarms: int = 0
    wear_annunciated: int = 0
    renewals: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def _spans() -> tuple[tuple[float, float], tuple[float, float]]:
    return (TRAIN_H * 3600, CLEAN_END_H * 3600), (CLEAN_END_H * 3600, END_H * 3600)


def _score_pair(
    alarms: list[Raised],
    truth: list[SensorEpisode],
    wear: list[SensorEpisode],
    *,
    by_station: bool = False,
    tolerate_wear: bool = False,
) -> tuple[Scored, Scored]:
    clean, faulted = _spans()
    required = [] if tolerate_wear else wear
    tolerated = wear if tolerate_wear else []
    return (
        score_alarms(
            alarms,
            required,
            start_s=clean[0],
            end_s=clean[1],
            by_station=by_station,
            tolerated=tolerated,
        ),
        score_alarms(
            alarms,
            [*truth, *required],
            start_s=faulted[0],
            end_s=faulted[1],
            by_station=by_station,
            tolerated=tolerated,
        ),
    )


class _Informative:
    """Keeps the messages that tell the watch, the baselines or the scoring
    anything: telemetry, state changes, a station's first state snapshot, and a
    finished part whose process values (setpoints, tool wear) changed. The rest (every
    part started, a part finished at the same setpoints, a state snapshot after the
    station's first state) moves nobody's inputs, and on bottling is nine messages in
    ten: kept, a 72 h run would not fit the bench's memory."""

    def __init__(self, out: list[Any]) -> None:
        self.out = out
        self._process: dict[tuple[str, int], dict[str, float]] = {}
        self._stated: set[str] = set()

    def take(self, station: str | None, message: BaseModel) -> None:
        if isinstance(message, PartStarted):
            return
        if isinstance(message, PartFinished) and station is not None:
            key = (station, message.machine)
            if not message.process or self._process.get(key) == message.process:
                return
            self._process[key] = dict(message.process)
        elif isinstance(message, StationState) and station is not None:
            if station in self._stated:
                return
            self._stated.add(station)
        elif isinstance(message, StateChanged) and station is not None:
            self._stated.add(station)
        self.out.append((station, message))


def raised_wear(watch: SensorWatch) -> list[SensorAlarm]:
    return [a for a in watch.alarms() if a.kind == "wear"]


def run(
    template: str,
    seed: int,
    settings: list[Setting],
    *,
    baselines: bool,
) -> RunResult:
    begun = time.perf_counter()
    config = load_config(TEMPLATES[template])
    faults, sizes = fault_plan(config, seed)
    config = with_faults(config, faults)
    stream: list[Any] = []
    run_through_ingest(config, END_H, seed, _Informative(stream).take)
    split = next(
        (i for i, (_, m) in enumerate(stream) if getattr(m, "sim_time_s", 0.0) >= TRAIN_H * 3600),
        len(stream),
    )
    truth = fault_episodes(config, sizes)
    wear = wear_episodes(stream, level=WEAR_LEVEL, end_s=END_H * 3600)
    expectation = fit_expectations(stream[:split], warmup_s=WARMUP_S)
    result = RunResult(template, seed, {})
    for setting in settings:
        watch = SensorWatch(
            expectation,
            WatchSettings(**dict(zip(NAMES, setting, strict=True)), wear_level=WEAR_LEVEL),
        )
        watch.feed_all(stream)
        raised = [
            Raised(a.station, a.sensor, a.started_s, a.raised_s, a.cleared_s, a.kind)
            for a in watch.alarms()
        ]
        result.ours[setting] = _score_pair(raised, truth, wear)
        if len(settings) == 1:
            result.ours_station = _score_pair(raised, truth, wear, by_station=True)
            result.skipped = watch.skipped
            worn = [a for a in raised_wear(watch) if a.raised_s >= TRAIN_H * 3600]
            result.wear_alarms = len(worn)
            result.wear_annunciated = sum(not a.on_plan for a in worn)
            result.renewals = dict(expectation.renewals)
    if baselines:
        train = (WARMUP_S, TRAIN_H * 3600)
        tested = (TRAIN_H * 3600, END_H * 3600)
        band = BandBaseline().fit(stream, *train)
        band_alarms = band.alarms(stream, *tested)
        result.band = (
            *_score_pair(band_alarms, truth, wear, tolerate_wear=True),
            *_score_pair(band_alarms, truth, wear, tolerate_wear=True, by_station=True),
        )  # type: ignore[assignment]
        pca = PcaBaseline().fit(stream, *train)
        for quantile in PCA_QUANTILES:
            pca.quantile = quantile
            pca_alarms = pca.alarms(stream, *tested)
            result.pca[quantile] = (
                *_score_pair(pca_alarms, truth, wear, tolerate_wear=True),
                *_score_pair(pca_alarms, truth, wear, tolerate_wear=True, by_station=True),
            )  # type: ignore[assignment]
        forest = forest_alarms(stream, train, tested, seed)
        result.forest = _score_pair(forest, truth, wear, tolerate_wear=True, by_station=True)
    result.seconds = time.perf_counter() - begun
    return result


def _pool(pairs: list[tuple[Scored, Scored]]) -> Scored:
    total = Scored()
    for clean, faulted in pairs:
        total.add(clean)
        total.add(faulted)
    return total


def _choose(runs: list[RunResult], grid: list[Setting]) -> tuple[Setting, list[dict[str, Any]]]:
    """The most sensitive setting whose false alarms on the tuning runs stay within
    ``TUNING_FALSE_PER_DAY``; among equals, fewer false alarms, then shorter delays."""
    rows = []
    for setting in grid:
        pooled = _pool([r.ours[setting] for r in runs])
        delay = statistics.fmean(pooled.delays_s) if pooled.delays_s else math.inf
        rows.append(
            {
                **dict(zip(NAMES, setting, strict=True)),
                "detection": round(pooled.detection_rate, 4),
                "false_per_day": round(pooled.false_per_day, 3),
                "mean_delay_min": round(delay / 60, 2),
                "_key": (
                    pooled.false_per_day <= TUNING_FALSE_PER_DAY,
                    pooled.detection_rate,
                    -pooled.false_per_day,
                    -delay,
                ),
                "_setting": setting,
            }
        )
    best = max(rows, key=lambda row: row["_key"])
    table = [{k: v for k, v in row.items() if not k.startswith("_")} for row in rows]
    return best["_setting"], table


def _choose_pca(runs: list[RunResult]) -> float:
    for quantile in PCA_QUANTILES:
        pooled = Scored()
        for r in runs:
            clean, faulted, _, _ = r.pca[quantile]
            pooled.add(clean)
            pooled.add(faulted)
        if pooled.false_per_day <= TUNING_FALSE_PER_DAY:
            return quantile
    return PCA_QUANTILES[-1]


def _summary(pooled: Scored, faulted_only: Scored | None = None) -> dict[str, Any]:
    found, total = pooled.faults
    delay = statistics.fmean(pooled.delays_s) / 60 if pooled.delays_s else math.nan
    return {
        "found": found,
        "faults": total,
        "detection": round(found / total, 4) if total else None,
        "false_alarms": pooled.false_alarms,
        "days": round(pooled.days, 2),
        "false_per_day": round(pooled.false_per_day, 3),
        "false_per_day_95": [
            round(poisson_lower(pooled.false_alarms, pooled.days), 3),
            round(poisson_upper(pooled.false_alarms, pooled.days), 3),
        ],
        "mean_delay_min": None if math.isnan(delay) else round(delay, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 report seeds, a smaller grid")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    begun = time.perf_counter()
    grid_spec = QUICK_GRID if args.quick else GRID
    grid = list(itertools.product(*grid_spec.values()))
    report_seeds = REPORT_SEEDS[:3] if args.quick else REPORT_SEEDS
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        print(f"tuning: {len(grid)} settings on seeds {TUNING_SEEDS}", file=sys.stderr)
        tuning = list(
            pool.map(
                _run_star,
                [(t, s, grid, True) for t in TUNED_ON for s in TUNING_SEEDS],
            )
        )
        chosen, grid_table = _choose(tuning, grid)
        quantile = _choose_pca(tuning)
        print(f"chosen {chosen}, PCA limit at quantile {quantile}", file=sys.stderr)
        report = []
        held_out = {t: seeds[:2] if args.quick else seeds for t, seeds in HELD_OUT_SEEDS.items()}
        # The longest first: the held-out bottling runs start while the rest queue.
        jobs = [(t, s, [chosen], True) for t, seeds in held_out.items() for s in seeds]
        jobs += [(t, s, [chosen], True) for t in TUNED_ON for s in report_seeds]
        for done, result in enumerate(pool.map(_run_star, jobs), 1):
            report.append(result)
            print(
                f"  {done}/{len(jobs)} {result.template} seed {result.seed}: "
                f"{result.seconds:.0f} s",
                file=sys.stderr,
            )
    ours = _pool([r.ours[chosen] for r in report])
    ours_station = _pool([r.ours_station for r in report if r.ours_station is not None])
    band = _pool([(r.band[0], r.band[1]) for r in report if r.band is not None])
    band_station = _pool([(r.band[2], r.band[3]) for r in report if r.band is not None])
    pca = _pool([(r.pca[quantile][0], r.pca[quantile][1]) for r in report])
    pca_station = _pool([(r.pca[quantile][2], r.pca[quantile][3]) for r in report])
    forest = _pool([r.forest for r in report if r.forest is not None])
    by_mode: dict[str, list[int]] = {}
    by_sensor: dict[str, list[int]] = {}
    by_size: dict[str, list[int]] = {}
    by_mode_sensor: dict[str, list[int]] = {}
    for (kind, sensor, size), (hit, total) in ours.by.items():
        if kind == "wear":
            continue
        for table, key in (
            (by_mode, kind),
            (by_sensor, sensor),
            (by_size, f"{kind} {size}".strip()),
            (by_mode_sensor, f"{kind} {sensor}"),
        ):
            counts = table.setdefault(key, [0, 0])
            counts[0] += hit
            counts[1] += total
    wear_found, wear_total = ours.by.get(("wear", "wear", ""), [0, 0])
    summary = _summary(ours)
    upper = summary["false_per_day_95"][1]
    wear_delay_max = max(ours.wear_delays_s, default=math.nan) / 60

    def beats(mine: dict[str, Any], other: dict[str, Any]) -> bool:
        """More found at no more false alarms, or as many at fewer."""
        found, theirs = mine["detection"] or 0.0, other["detection"] or 0.0
        quiet, noisy = mine["false_per_day"], other["false_per_day"]
        return (found > theirs and quiet <= noisy) or (found >= theirs and quiet < noisy)

    at_station = _summary(ours_station)
    better = all(beats(summary, _summary(other)) for other in (band, pca)) and all(
        beats(at_station, _summary(other)) for other in (band_station, pca_station, forest)
    )
    figures: dict[str, Any] = {
        "benchmark": "alarms",
        "ratio": summary["detection"],
        "target": TARGETS["detection"],
        "false_per_day": summary["false_per_day"],
        "false_per_day_95": summary["false_per_day_95"],
        "mean_delay_min": summary["mean_delay_min"],
        "wear_found": wear_found,
        "wear_episodes": wear_total,
        "wear_mean_delay_min": round(statistics.fmean(ours.wear_delays_s) / 60, 2)
        if ours.wear_delays_s
        else None,
        "wear_max_delay_min": None if math.isnan(wear_delay_max) else round(wear_delay_max, 2),
        "kind_named_right": round(ours.kinds_right / max(ours.found, 1), 3),
        # Per template: wear alarms raised, those past the line's renewal plan (the
        # rest held back), and the runs that learnt a plan.
        "wear_annunciated": {
            t: {
                "raised": sum(r.wear_alarms for r in report if r.template == t),
                "annunciated": sum(r.wear_annunciated for r in report if r.template == t),
                "runs_with_plan": sum(bool(r.renewals) for r in report if r.template == t),
            }
            for t in TEMPLATES
        },
        "targets": TARGETS,
        "met": {
            "detection": (summary["detection"] or 0) >= TARGETS["detection"],
            "false_per_day": summary["false_per_day"] <= TARGETS["false_per_day"],
            "false_per_day_upper": upper <= TARGETS["false_per_day_upper"],
            "mean_delay_min": summary["mean_delay_min"] <= TARGETS["mean_delay_min"],
            "wear_delay_max_min": wear_delay_max <= TARGETS["wear_delay_max_min"],
            "beats_baselines": better,
        },
        "ours": summary,
        "ours_station": at_station,
        # Each template on its own: bottling is the line the settings never saw.
        "by_template": {
            t: {
                "seeds": [r.seed for r in report if r.template == t],
                **_summary(_pool([r.ours[chosen] for r in report if r.template == t])),
            }
            for t in TEMPLATES
        },
        "by_mode": {k: v for k, v in sorted(by_mode.items())},
        "by_sensor": {k: v for k, v in sorted(by_sensor.items())},
        "by_size": {k: v for k, v in sorted(by_size.items())},
        "by_mode_sensor": {k: v for k, v in sorted(by_mode_sensor.items())},
        "baselines": {
            "band": {"sensor": _summary(band), "station": _summary(band_station)},
            "pca": {
                "sensor": _summary(pca),
                "station": _summary(pca_station),
                "quantile": quantile,
            },
            "forest": {"station": _summary(forest)},
        },
        "settings": dict(zip(NAMES, chosen, strict=True)),
        "tuning": {"seeds": list(TUNING_SEEDS), "grid": grid_table},
        "templates": list(TEMPLATES),
        "tuned_on": list(TUNED_ON),
        "report_seeds": list(report_seeds),
        "held_out_seeds": {t: list(seeds) for t, seeds in held_out.items()},
        "hours": {
            "train": TRAIN_H,
            "fault_free": CLEAN_END_H - TRAIN_H,
            "faulted": END_H - CLEAN_END_H,
        },
        "faults_per_run": len(FAULTS),
        "missed": [
            f"{e.station}/{e.sensor} {e.kind} {e.size}".strip()
            for e in ours.missed
            if e.kind != "wear"
        ][:40],
        "false": [
            f"{a.station}/{a.sensor} {a.kind} at {a.raised_s / 3600:.2f} h" for a in ours.false
        ][:40],
        "skipped_readings": sum(r.skipped for r in report),
        "seconds": round(time.perf_counter() - begun, 1),
    }
    emit("alarms", figures, quick=args.quick)
    if not args.quick:
        update("alarms")
    return 0


def _run_star(job: tuple[str, int, list[Setting], bool]) -> RunResult:
    template, seed, settings, baselines = job
    return run(template, seed, settings, baselines=baselines)


if __name__ == "__main__":
    sys.exit(main())
