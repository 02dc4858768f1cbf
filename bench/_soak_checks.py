"""The soak's verdicts (``bench/soak.py``): plain statistics on series sampled over a run.

Every series is a list of (seconds since the run's first sample, value). The run
is cut into four quarters by time; the first is warm-up (imports settle, caches
and buffers fill, the store's first pages are laid out) and no check looks at
it except where it says so. Each check compares what it sees after warm-up:

- **memory flat**: the least-squares slope of the RSS over the second half, in
  MB an hour, below a bound; and the last quarter's median RSS within a ratio of
  the second quarter's.
- **store linear**: the R² of a straight line fitted to the store's size on
  disk against time after warm-up, above a bound; and the bytes each new sample
  costs in the last quarter within a ratio of those in the second quarter.
- **latency not growing**: the last quarter's median latency over the second
  quarter's, below a ratio, unless the growth is below an absolute floor in
  milliseconds (sub-millisecond noise on a fast endpoint is not growth).
- **lag bounded**: the twin's lag in messages grows between the second and the
  last quarter by no more than a second of traffic (at least 500 messages, as
  ``bench/end_to_end.py`` judges keeping up), and its lag in wall seconds by no
  more than ``max_growth_s``.

Only the standard library, so the unit test imports it without the rest.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

Series = list[tuple[float, float]]

# The default bounds, stated in the soak's output.
MAX_RSS_SLOPE_MB_PER_H = 10.0
MAX_RSS_RATIO = 1.05
MIN_STORE_R2 = 0.98
MAX_BYTES_PER_SAMPLE_RATIO = 1.25
MAX_LATENCY_RATIO = 1.5
LATENCY_FLOOR_MS = 5.0
LAG_MIN_ALLOWED_MESSAGES = 500.0
LAG_MAX_GROWTH_S = 1.0


@dataclass(frozen=True)
class Check:
    """One verdict: its name, pass or fail, its figures and why, in words."""

    name: str
    passed: bool
    detail: str
    figures: dict[str, float | None] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return {"passed": self.passed, **self.figures, "detail": self.detail}


def least_squares(series: Series) -> tuple[float, float, float]:
    """(slope, intercept, R²) of the straight line through ``series``.

    R² is 1 for a series that does not vary at all (the line fits it exactly);
    fewer than two distinct times raise ``ValueError``.
    """
    if len(series) < 2:
        raise ValueError(f"a line needs at least 2 points, got {len(series)}")
    xs = [x for x, _ in series]
    ys = [y for _, y in series]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mean_x) ** 2 for x in xs)
    if sxx == 0:
        raise ValueError("a line needs at least 2 distinct times")
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in series)
    slope = sxy / sxx
    intercept = mean_y - slope * mean_x
    total = sum((y - mean_y) ** 2 for y in ys)
    residual = sum((y - (intercept + slope * x)) ** 2 for x, y in series)
    r2 = 1.0 if total == 0 else 1.0 - residual / total
    return slope, intercept, r2


def span(series: Series) -> tuple[float, float]:
    if not series:
        raise ValueError("an empty series has no span")
    return series[0][0], series[-1][0]


def between(series: Series, start: float, end: float) -> Series:
    """The points from ``start`` (inclusive) to ``end`` (inclusive only at the run's end)."""
    last = series[-1][0]
    return [(t, v) for t, v in series if start <= t < end or (t == end == last)]


def quarter(series: Series, number: int) -> Series:
    """The points in quarter ``number`` (1 to 4) of the series' time span."""
    if number not in (1, 2, 3, 4):
        raise ValueError(f"quarter must be 1 to 4, got {number}")
    first, last = span(series)
    width = (last - first) / 4
    return between(series, first + (number - 1) * width, first + number * width)


def after_warmup(series: Series) -> Series:
    first, last = span(series)
    return between(series, first + (last - first) / 4, last)


def second_half(series: Series) -> Series:
    first, last = span(series)
    return between(series, first + (last - first) / 2, last)


def median(series: Series) -> float:
    if not series:
        raise ValueError("no points to take a median of")
    return statistics.median(v for _, v in series)


def _enough(series: Series, name: str) -> str | None:
    """Why ``series`` is too short to judge (None: it is long enough)."""
    if len(series) < 8:
        return f"{name}: {len(series)} samples, at least 8 are needed (2 a quarter)"
    if any(not quarter(series, n) for n in (2, 4)):
        return f"{name}: no sample in the second or the last quarter"
    return None


def memory_flat(
    rss_mb: Series,
    *,
    max_slope_mb_per_h: float = MAX_RSS_SLOPE_MB_PER_H,
    max_ratio: float = MAX_RSS_RATIO,
) -> Check:
    if (why := _enough(rss_mb, "memory")) is not None:
        return Check("memory_flat", False, why)
    slope_per_s, _, _ = least_squares(second_half(rss_mb))
    slope = slope_per_s * 3600
    second, last = median(quarter(rss_mb, 2)), median(quarter(rss_mb, 4))
    ratio = last / second
    passed = slope <= max_slope_mb_per_h and ratio <= max_ratio
    detail = (
        f"RSS slope over the second half {slope:+.1f} MB/h (bound {max_slope_mb_per_h:g}); "
        f"median last quarter {last:.1f} MB / second quarter {second:.1f} MB = {ratio:.3f} "
        f"(bound {max_ratio:g})"
    )
    return Check(
        "memory_flat",
        passed,
        detail,
        {
            "slope_mb_per_h": round(slope, 2),
            "slope_bound_mb_per_h": max_slope_mb_per_h,
            "ratio": round(ratio, 4),
            "ratio_bound": max_ratio,
            "second_quarter_mb": round(second, 1),
            "last_quarter_mb": round(last, 1),
        },
    )


def _bytes_per_sample(size: Series, samples: Series, number: int) -> float | None:
    """The bytes on disk each sample added over quarter ``number`` (None: none added)."""
    grown_size = quarter(size, number)
    grown_samples = quarter(samples, number)
    if len(grown_size) < 2 or len(grown_samples) < 2:
        return None
    added = grown_samples[-1][1] - grown_samples[0][1]
    if added <= 0:
        return None
    return (grown_size[-1][1] - grown_size[0][1]) / added


def store_linear(
    size_bytes: Series,
    samples: Series,
    *,
    min_r2: float = MIN_STORE_R2,
    max_ratio: float = MAX_BYTES_PER_SAMPLE_RATIO,
) -> Check:
    """``size_bytes`` and ``samples`` are sampled at the same times."""
    if (why := _enough(size_bytes, "store")) is not None:
        return Check("store_linear", False, why)
    fitted = after_warmup(size_bytes)
    slope, _, r2 = least_squares(fitted)
    if slope <= 0:
        return Check(
            "store_linear",
            False,
            "the store did not grow after warm-up",
            {"r2": round(r2, 4), "r2_bound": min_r2},
        )
    second = _bytes_per_sample(size_bytes, samples, 2)
    last = _bytes_per_sample(size_bytes, samples, 4)
    if second is None or last is None or second <= 0 or last <= 0:
        ratio = math.inf
        per_sample = "the store took no samples, or did not grow, in the second or last quarter"
    else:
        ratio = max(last / second, second / last)
        per_sample = (
            f"bytes per new sample {second:.1f} in the second quarter, {last:.1f} in the "
            f"last: {ratio:.3f} apart (bound {max_ratio:g})"
        )
    passed = r2 >= min_r2 and ratio <= max_ratio
    detail = (
        f"size on disk against time after warm-up: R² {r2:.4f} (bound {min_r2:g}), "
        f"{slope * 3600 / 1e6:.0f} MB/h; {per_sample}"
    )
    return Check(
        "store_linear",
        passed,
        detail,
        {
            "r2": round(r2, 5),
            "r2_bound": min_r2,
            "mb_per_h": round(slope * 3600 / 1e6, 1),
            "bytes_per_sample_second_quarter": None if second is None else round(second, 2),
            "bytes_per_sample_last_quarter": None if last is None else round(last, 2),
            "bytes_per_sample_ratio": None if math.isinf(ratio) else round(ratio, 4),
            "bytes_per_sample_ratio_bound": max_ratio,
        },
    )


def latency_steady(
    name: str,
    latency_ms: Series,
    *,
    max_ratio: float = MAX_LATENCY_RATIO,
    floor_ms: float = LATENCY_FLOOR_MS,
) -> Check:
    if (why := _enough(latency_ms, name)) is not None:
        return Check(name, False, why)
    second, last = median(quarter(latency_ms, 2)), median(quarter(latency_ms, 4))
    ratio = last / second if second > 0 else math.inf
    growth = last - second
    passed = ratio <= max_ratio or growth <= floor_ms
    detail = (
        f"median last quarter {last:.2f} ms / second quarter {second:.2f} ms = {ratio:.2f} "
        f"(bound {max_ratio:g}, or growth {growth:+.2f} ms under {floor_ms:g} ms)"
    )
    return Check(
        name,
        passed,
        detail,
        {
            "ratio": None if math.isinf(ratio) else round(ratio, 3),
            "ratio_bound": max_ratio,
            "floor_ms": floor_ms,
            "second_quarter_ms": round(second, 2),
            "last_quarter_ms": round(last, 2),
        },
    )


def lag_bounded(
    lag_messages: Series,
    lag_s: Series,
    rate_msg_per_s: float,
    *,
    min_allowed_messages: float = LAG_MIN_ALLOWED_MESSAGES,
    max_growth_s: float = LAG_MAX_GROWTH_S,
) -> Check:
    """``lag_s`` in wall seconds; ``rate_msg_per_s`` the twin's intake over the run."""
    for series, name in ((lag_messages, "lag in messages"), (lag_s, "lag in seconds")):
        if (why := _enough(series, name)) is not None:
            return Check("lag_bounded", False, why)
    allowed = max(rate_msg_per_s, min_allowed_messages)
    second_m, last_m = median(quarter(lag_messages, 2)), median(quarter(lag_messages, 4))
    second_s, last_s = median(quarter(lag_s, 2)), median(quarter(lag_s, 4))
    grew_m, grew_s = last_m - second_m, last_s - second_s
    passed = grew_m <= allowed and grew_s <= max_growth_s
    detail = (
        f"median lag {second_m:.0f} -> {last_m:.0f} messages (growth bound {allowed:.0f}: a "
        f"second of traffic, at least {min_allowed_messages:g}); {second_s:.2f} -> "
        f"{last_s:.2f} s (growth bound {max_growth_s:g} s)"
    )
    return Check(
        "lag_bounded",
        passed,
        detail,
        {
            "second_quarter_messages": round(second_m, 1),
            "last_quarter_messages": round(last_m, 1),
            "growth_bound_messages": round(allowed, 1),
            "second_quarter_s": round(second_s, 3),
            "last_quarter_s": round(last_s, 3),
            "growth_bound_s": max_growth_s,
        },
    )
