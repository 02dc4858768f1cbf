"""The soak's verdicts (``bench/_soak_checks.py``) on synthetic series whose truth is known.

Each series is made from a model (a flat RSS with noise, a leak of so many MB an
hour, a store growing so many bytes a sample), so a check must pass where the
model holds the property and fail where it breaks it; the fitted figures are
compared with the model's own parameters and with numpy's fit.
"""

from __future__ import annotations

import importlib.util
import random
import sys
from types import ModuleType

import numpy as np
import pytest
from helpers import REPO


def _load() -> ModuleType:
    path = REPO / "bench" / "_soak_checks.py"
    spec = importlib.util.spec_from_file_location("_soak_checks", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


checks = _load()

RUN_S = 1800.0
EVERY_S = 10.0
TIMES = [i * EVERY_S for i in range(int(RUN_S / EVERY_S) + 1)]


def series(value: object) -> list[tuple[float, float]]:
    return [(t, float(value(t))) for t in TIMES]  # type: ignore[operator]


def warming_rss(rng: random.Random, leak_mb_per_h: float) -> list[tuple[float, float]]:
    """120 MB rising to 150 over the first quarter (warm-up), then ``leak_mb_per_h``, noise."""
    warm = RUN_S / 4

    def rss(t: float) -> float:
        base = 120 + 30 * min(t, warm) / warm
        return base + leak_mb_per_h * max(0.0, t - warm) / 3600 + rng.gauss(0, 1.0)

    return series(rss)


def test_least_squares_matches_numpy() -> None:
    rng = random.Random(7)
    points = [(t, 3.0 + 0.25 * t + rng.gauss(0, 20)) for t in TIMES]
    slope, intercept, r2 = checks.least_squares(points)
    xs, ys = np.array([p[0] for p in points]), np.array([p[1] for p in points])
    np_slope, np_intercept = np.polyfit(xs, ys, 1)
    assert slope == pytest.approx(np_slope, rel=1e-9)
    assert intercept == pytest.approx(np_intercept, rel=1e-9)
    assert r2 == pytest.approx(np.corrcoef(xs, ys)[0, 1] ** 2, rel=1e-9)


def test_quarters_split_the_run_by_time_and_cover_it() -> None:
    points = series(lambda t: t)
    quarters = [checks.quarter(points, n) for n in (1, 2, 3, 4)]
    assert sum(len(q) for q in quarters) == len(points)
    assert [q[0][0] for q in quarters] == [0.0, 450.0, 900.0, 1350.0]
    assert quarters[3][-1][0] == RUN_S


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_flat_memory_after_warm_up_passes(seed: int) -> None:
    check = checks.memory_flat(warming_rss(random.Random(seed), leak_mb_per_h=0.0))
    assert check.passed, check.detail


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_leak_fails_and_is_measured(seed: int) -> None:
    leak = 3 * checks.MAX_RSS_SLOPE_MB_PER_H
    check = checks.memory_flat(warming_rss(random.Random(seed), leak_mb_per_h=leak))
    assert not check.passed
    # The slope found is the leak put in, within the noise.
    assert check.figures["slope_mb_per_h"] == pytest.approx(leak, abs=leak / 3)


def test_a_jump_in_the_last_quarter_fails_on_the_ratio() -> None:
    rng = random.Random(4)

    def rss(t: float) -> float:
        return 150 * (1.2 if t >= 0.8 * RUN_S else 1.0) + rng.gauss(0, 0.5)

    check = checks.memory_flat(series(rss))
    assert not check.passed
    assert check.figures["ratio"] == pytest.approx(1.2, abs=0.02)


def store_series(
    rng: random.Random, bytes_per_sample: object, samples_per_s: object
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    size, count, total_size, total_count = [], [], 0.0, 0.0
    for i, t in enumerate(TIMES):
        if i:
            added = samples_per_s(t) * EVERY_S  # type: ignore[operator]
            total_count += added
            total_size += added * bytes_per_sample(t)  # type: ignore[operator]
        # Page-sized noise: SQLite grows its files in pages, the WAL in bursts.
        size.append((t, total_size + rng.uniform(0, 64 * 4096)))
        count.append((t, total_count))
    return size, count


def test_a_store_growing_by_the_sample_passes() -> None:
    size, count = store_series(random.Random(5), lambda t: 40.0, lambda t: 5000.0)
    check = checks.store_linear(size, count)
    assert check.passed, check.detail
    assert check.figures["bytes_per_sample_last_quarter"] == pytest.approx(40.0, rel=0.02)


def test_a_store_that_stops_growing_fails_on_linearity() -> None:
    size, count = store_series(
        random.Random(5), lambda t: 40.0, lambda t: 5000.0 if t < RUN_S / 2 else 0.0
    )
    check = checks.store_linear(size, count)
    assert not check.passed
    assert check.figures["r2"] < checks.MIN_STORE_R2


def test_samples_growing_dearer_fail_on_bytes_per_sample() -> None:
    # A constant sample rate, each sample costing 40 bytes at first and twice that by
    # the end: the size curves up gently (R² stays high) but the cost per sample grew.
    size, count = store_series(random.Random(6), lambda t: 40.0 * (1 + t / RUN_S), lambda t: 5000.0)
    check = checks.store_linear(size, count)
    assert not check.passed
    assert check.figures["r2"] >= checks.MIN_STORE_R2
    expected = (1 + 1575 / RUN_S) / (1 + 675 / RUN_S)  # mid-quarter costs, last over second
    assert check.figures["bytes_per_sample_ratio"] == pytest.approx(expected, rel=0.05)


def test_a_store_that_never_grows_fails() -> None:
    size, count = store_series(random.Random(8), lambda t: 40.0, lambda t: 0.0)
    assert not checks.store_linear(size, count).passed


def noisy_latency(rng: random.Random, start_ms: float, end_ms: float) -> list[tuple[float, float]]:
    return series(lambda t: (start_ms + (end_ms - start_ms) * t / RUN_S) * rng.uniform(0.8, 1.25))


def test_steady_latency_passes() -> None:
    check = checks.latency_steady("twin_latency", noisy_latency(random.Random(9), 12.0, 12.0))
    assert check.passed, check.detail


def test_growing_latency_fails() -> None:
    check = checks.latency_steady("twin_latency", noisy_latency(random.Random(9), 10.0, 40.0))
    assert not check.passed
    # Linear growth: the quarters' middles are at 3/8 and 7/8 of the run.
    assert check.figures["ratio"] == pytest.approx((10 + 30 * 7 / 8) / (10 + 30 * 3 / 8), rel=0.1)


def test_sub_millisecond_growth_is_under_the_floor() -> None:
    # Tripled, but by less than the floor: noise on a fast endpoint, not growth.
    check = checks.latency_steady("kpis_latency", noisy_latency(random.Random(9), 0.3, 1.2))
    assert check.figures["ratio"] > checks.MAX_LATENCY_RATIO
    assert check.passed, check.detail


def test_bounded_lag_passes_and_growing_lag_fails() -> None:
    rng = random.Random(10)
    bounded = series(lambda t: rng.uniform(0, 400))
    bounded_s = series(lambda t: rng.uniform(0.0, 0.3))
    assert checks.lag_bounded(bounded, bounded_s, 3000.0).passed
    growing = series(lambda t: 10 * t)  # 10 messages more every second
    assert not checks.lag_bounded(growing, bounded_s, 3000.0).passed
    growing_s = series(lambda t: t / 100)  # a second more every 100 s
    assert not checks.lag_bounded(bounded, growing_s, 3000.0).passed


def test_too_few_samples_fail_with_a_reason() -> None:
    short = [(0.0, 100.0), (1.0, 100.0), (2.0, 100.0)]
    check = checks.memory_flat(short)
    assert not check.passed
    assert "at least 8" in check.detail
