"""A sweep's report: the result as files in a directory.

``sweep.json`` holds everything (the spec, every run's KPIs, each design
point's estimates, the Pareto front) plus how it was run; ``sweep.csv`` has
one row per design point; ``sweep.md`` is the table for people; two plots:
``throughput_vs_wip.png`` (each point's mean with its confidence intervals,
coloured by yield, the Pareto front marked) and ``main_effects.png`` (each
KPI's mean at each level of each factor, averaged over the other factors).

Figures are drawn on their own Agg canvas, never through pyplot, so writing a
report touches no global matplotlib state and needs no display.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from twin.experiments.experiment import (
    ABOVE_ONE_MARK,
    ABOVE_ONE_NOTE,
    Estimate,
    interval_text,
    kpi_range,
)
from twin.experiments.sweep import KEY_KPIS, PARETO_OBJECTIVES, PointSummary, SweepResult

LABELS: dict[str, str] = {
    "throughput_per_h": "throughput (good/h)",
    "mean_wip": "WIP (parts)",
    "cycle_time_s": "cycle time (s)",
    "yield_ratio": "yield",
    "oee": "OEE",
    "scrap_ratio": "scrap ratio",
    "cost_per_good_part": "cost per good part",
}
# A factor with more distinct values than this is drawn as a scatter with binned means.
MAX_LEVELS_DRAWN = 12
BINS = 5


def _jsonable(value: Any) -> Any:
    """Plain JSON: non-finite floats become null (strict JSON has no NaN)."""
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _cell(estimate: Estimate | None, digits: int, ratio: bool = False) -> str:
    if estimate is None:
        return "-"
    mark = ABOVE_ONE_MARK if ratio and estimate.mean > 1 else ""
    return f"{estimate.mean:.{digits}f}{mark}" + interval_text(estimate, digits=digits)


def _digits(name: str) -> int:
    return 3 if name in ("yield_ratio", "oee", "scrap_ratio") else 2


def _level(value: int | float | str) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _write_csv(result: SweepResult, path: Path) -> Path:
    factors = [factor.name for factor in result.spec.factors]
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file, lineterminator="\n")
        header = ["point", *factors, "pareto", "replications"]
        for name in KEY_KPIS:
            header += [f"{name}_mean", f"{name}_low", f"{name}_high"]
        writer.writerow(header)
        for point in result.points:
            row: list[Any] = [point.index, *(point.values[name] for name in factors)]
            row += [int(point.pareto), result.spec.replications]
            for name in KEY_KPIS:
                found = point.kpis.get(name)
                cells = (found.mean, found.low, found.high) if found else (None, None, None)
                row += ["" if value is None else repr(value) for value in cells]
            writer.writerow(row)
    return path


def _markdown(result: SweepResult, run_info: Mapping[str, Any]) -> str:
    spec = result.spec
    factors = [factor.name for factor in spec.factors]
    lines = [
        f"# Sweep of line {result.line}",
        "",
        f"{spec.design} design, {len(result.points)} points × {spec.replications} replications "
        f"of {spec.hours:g} h (warm-up {spec.warmup_hours:g} h), seed {spec.seed}; "
        f"line config {result.config_hash}, factory-twin {result.version}.",
        f"Each KPI: mean ± half-width of its {spec.confidence:.0%} confidence interval "
        "over the replications (low-high where clipped to a ratio's range, 0 to 1). "
        "★ marks the Pareto front (throughput up, WIP down, yield up).",
        "",
    ]
    if run_info:
        lines += ["Run: " + ", ".join(f"{key} {value}" for key, value in run_info.items()), ""]
    headers = ["point", *factors, *(LABELS[name] for name in KEY_KPIS)]
    lines.append("| " + " | ".join(headers) + " |")
    lines.append("|" + "---|" * len(headers))
    marked = False
    for point in result.points:
        cells = [f"{point.index}{' ★' if point.pareto else ''}"]
        cells += [_level(point.values[name]) for name in factors]
        kpi_cells = [
            _cell(point.kpis.get(name), _digits(name), kpi_range(name) is not None)
            for name in KEY_KPIS
        ]
        marked = marked or any(ABOVE_ONE_MARK in cell for cell in kpi_cells)
        lines.append("| " + " | ".join(cells + kpi_cells) + " |")
    lines += [""]
    if marked:
        lines += [ABOVE_ONE_NOTE, ""]
    lines += [
        f"Pareto front: points {', '.join(map(str, result.pareto)) or 'none'}.",
        "",
        "![throughput vs WIP](throughput_vs_wip.png)",
        "",
        "![main effects](main_effects.png)",
        "",
    ]
    return "\n".join(lines)


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _mean_of(point: PointSummary, name: str) -> float | None:
    found = point.kpis.get(name)
    return None if found is None else found.mean


def _plot_tradeoff(result: SweepResult, path: Path) -> Path:
    figure = _figure(7.5, 5.0)
    axes = figure.subplots()
    drawn = [
        point
        for point in result.points
        if "mean_wip" in point.kpis and "throughput_per_h" in point.kpis
    ]
    wip = [point.kpis["mean_wip"] for point in drawn]
    throughput = [point.kpis["throughput_per_h"] for point in drawn]
    yields = [_mean_of(point, "yield_ratio") for point in drawn]
    axes.errorbar(
        [e.mean for e in wip],
        [e.mean for e in throughput],
        xerr=[e.half_width or 0.0 for e in wip],
        yerr=[e.half_width or 0.0 for e in throughput],
        fmt="none",
        ecolor="0.7",
        zorder=1,
    )
    scatter = axes.scatter(
        [e.mean for e in wip],
        [e.mean for e in throughput],
        c=[math.nan if value is None else value for value in yields],
        cmap="viridis",
        s=30,
        zorder=2,
    )
    figure.colorbar(scatter, ax=axes, label="yield")
    front = sorted(
        (point for point in drawn if point.pareto),
        key=lambda point: point.kpis["mean_wip"].mean,
    )
    if front:
        axes.scatter(
            [point.kpis["mean_wip"].mean for point in front],
            [point.kpis["throughput_per_h"].mean for point in front],
            s=140,
            facecolors="none",
            edgecolors="tab:red",
            linewidths=1.5,
            label="Pareto front",
            zorder=3,
        )
        for point in front:
            axes.annotate(
                str(point.index),
                (point.kpis["mean_wip"].mean, point.kpis["throughput_per_h"].mean),
                textcoords="offset points",
                xytext=(6, 4),
                fontsize=8,
                color="tab:red",
            )
        axes.legend(loc="lower right")
    axes.set_xlabel(LABELS["mean_wip"])
    axes.set_ylabel(LABELS["throughput_per_h"])
    axes.set_title(f"Sweep of line {result.line}: throughput vs WIP")
    axes.grid(alpha=0.3)
    figure.savefig(path, dpi=110)
    return path


def _main_effect(axes: Axes, points: Sequence[PointSummary], factor: str, kpi: str) -> None:
    """The KPI's mean at each level of ``factor``, over the points at that level."""
    pairs = [
        (point.values[factor], mean)
        for point in points
        if (mean := _mean_of(point, kpi)) is not None
    ]
    if not pairs:
        return
    levels = list(dict.fromkeys(value for value, _ in pairs))
    if any(isinstance(value, str) for value in levels):
        means = [statistics.fmean(y for x, y in pairs if x == level) for level in levels]
        positions = list(range(len(levels)))
        axes.plot(positions, means, marker="o")
        axes.set_xticks(positions, [_level(level) for level in levels])
        return
    numeric = sorted((float(x), y) for x, y in pairs)
    if len(levels) <= MAX_LEVELS_DRAWN:
        xs = sorted({x for x, _ in numeric})
        axes.plot(xs, [statistics.fmean(y for x, y in numeric if x == level) for level in xs], "o-")
        if all(isinstance(value, int) for value in levels):
            axes.set_xticks(xs, [str(int(x)) for x in xs])
        return
    axes.scatter([x for x, _ in numeric], [y for _, y in numeric], s=8, color="0.6")
    size = math.ceil(len(numeric) / BINS)
    bins = [numeric[start : start + size] for start in range(0, len(numeric), size)]
    axes.plot(
        [statistics.fmean(x for x, _ in chunk) for chunk in bins],
        [statistics.fmean(y for _, y in chunk) for chunk in bins],
        "o-",
    )


def _plot_main_effects(result: SweepResult, path: Path) -> Path:
    factors = [factor.name for factor in result.spec.factors]
    kpis = [name for name, _ in PARETO_OBJECTIVES]
    figure = _figure(min(3.2 * len(factors), 20.0) + 0.6, 2.4 * len(kpis) + 0.5)
    grid = figure.subplots(len(kpis), len(factors), squeeze=False, sharey="row")
    for row, kpi in enumerate(kpis):
        for column, factor in enumerate(factors):
            axes = grid[row][column]
            _main_effect(axes, result.points, factor, kpi)
            axes.grid(alpha=0.3)
            if row == len(kpis) - 1:
                axes.set_xlabel(factor, fontsize=8)
            if column == 0:
                axes.set_ylabel(LABELS[kpi])
    figure.suptitle("Main effects: mean over the design points at each level")
    figure.savefig(path, dpi=110)
    return path


def write_sweep_report(
    result: SweepResult, directory: str | Path, run_info: Mapping[str, Any] | None = None
) -> list[Path]:
    """Write the report files into ``directory`` (created); return their paths.

    ``run_info`` (backend, workers, elapsed time) goes into the JSON and the
    Markdown beside the result, which never depends on it.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    info = dict(run_info or {})
    document = {"result": result.model_dump(mode="json"), "run": info}
    json_path = out / "sweep.json"
    json_path.write_text(json.dumps(_jsonable(document), indent=2, allow_nan=False) + "\n", "utf-8")
    markdown = out / "sweep.md"
    markdown.write_text(_markdown(result, info), "utf-8")
    return [
        json_path,
        _write_csv(result, out / "sweep.csv"),
        markdown,
        _plot_tradeoff(result, out / "throughput_vs_wip.png"),
        _plot_main_effects(result, out / "main_effects.png"),
    ]


__all__ = ["write_sweep_report"]
