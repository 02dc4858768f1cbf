"""Tables the documents quote, rendered from the result files that scripts wrote.

A table in README.md or docs/ that a script measures sits between two markers,

    <!-- figures:NAME -->
    ...
    <!-- /figures:NAME -->

and ``render(NAME)`` makes it from ``bench/results/<file>.json`` (``TABLES``
says which file). A script that writes the file calls ``update(NAME)`` to
rewrite the block; ``tests/test_figures.py`` checks every block is what its
file renders, so a number edited by hand in a table, or a file re-measured
without the document following, fails there.

Only the standard library here: the test imports this module.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"

Record = Mapping[str, Any]
Renderer = Callable[[Record], str]

# name -> (the result file's stem, the renderer)
TABLES: dict[str, tuple[str, Renderer]] = {}


def table(name: str, result: str) -> Callable[[Renderer], Renderer]:
    def register(renderer: Renderer) -> Renderer:
        TABLES[name] = (result, renderer)
        return renderer

    return register


def markers(name: str) -> tuple[str, str]:
    return f"<!-- figures:{name} -->", f"<!-- /figures:{name} -->"


def documents() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


BLOCK = re.compile(r"<!-- figures:([a-z0-9-]+) -->\n(.*?)<!-- /figures:\1 -->", re.DOTALL)


def blocks() -> Iterator[tuple[Path, str, str]]:
    """(document, name, text between the markers) for every block in the documents."""
    for doc in documents():
        for match in BLOCK.finditer(doc.read_text("utf-8")):
            yield doc, match.group(1), match.group(2)


def record(name: str) -> Record:
    stem = TABLES[name][0]
    data: Record = json.loads((RESULTS / f"{stem}.json").read_text("utf-8"))
    return data


def render(name: str) -> str:
    """The block's text, ending with a newline."""
    text = TABLES[name][1](record(name))
    return text if text.endswith("\n") else text + "\n"


def update(*names: str) -> None:
    """Rewrite every block of ``names`` in the documents from its result file."""
    for doc in documents():
        text = doc.read_text("utf-8")
        new = text
        for name in names:
            begin, end = markers(name)
            new = re.sub(
                re.escape(begin) + r"\n.*?" + re.escape(end),
                lambda _m, n=name, b=begin, e=end: f"{b}\n{render(n)}{e}",
                new,
                flags=re.DOTALL,
            )
        if new != text:
            doc.write_text(new, encoding="utf-8")
            print(f"updated {doc.relative_to(REPO)}: {', '.join(names)}", flush=True)


# -- formatting --------------------------------------------------------------------------------
def x(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}×"


def pct(value: float, digits: int = 1) -> str:
    return f"{100 * value:.{digits}f}%"


def span(values: list[float], fmt: Callable[[float], str]) -> str:
    return f"{fmt(min(values))} to {fmt(max(values))}"


def quick_note(data: Record) -> str:
    return " (quick run)" if data.get("quick") else ""


def mark(met: bool) -> str:
    return "✔" if met else "✘ (not met)"


def rounds_note(values: list[float]) -> str:
    if len(values) < 2:
        return "one round"
    return f"median of {len(values)} rounds, {span(values, x)}"


def dated(data: Record) -> str:
    return str(data["measured_at"])[:10]


# -- bench/scaling.py --------------------------------------------------------------------------
@table("scaling", "scaling")
def scaling(d: Record) -> str:
    load = d["load_average"]
    lines = [
        f"Run of {dated(d)}{quick_note(d)}, {d['rounds']} interleaved rounds, load average "
        f"{load[0]:.1f} before and {load[1]:.1f} after (other work on the machine). A "
        "speedup or ratio is the median of the rounds' paired ratios, the range beside it.",
        "",
        "| Curve | Measured (medians) | Against linear | Target |",
        "|---|---|---|---|",
    ]
    target = d["speedup_target"]
    for backend, title in (("pool", "process pool"), ("dask", "Dask `LocalCluster`")):
        rates = d[f"{backend}_runs_per_s"]
        speedup = d[f"{backend}_speedup"]
        lines.append(
            f"| Sweep, {title}, 1 → 2 workers | {rates['1']:.2f} → {rates['2']:.2f} runs/s "
            f"| **{x(speedup)}** ({rounds_note(d[f'{backend}_speedup_rounds'])}); "
            f"{speedup / 2:.2f} of linear | ≥ {target:g}× {mark(speedup >= target)} |"
        )
    lines.append(
        "| What the machine gave two busy processes against one (the ceiling of both "
        f"speedups) | a task inside a Dask worker: {d['task_s']:.2f} s with 1 worker, "
        f"{d['task_s_two_workers']:.2f} s with 2 | **{x(d['machine_parallelism'])}** "
        f"({rounds_note(d['machine_parallelism_rounds'])}) | 2.00× on idle cores |"
    )
    overhead = d["dask_overhead_per_task_s"]
    own = d["dask_overhead_in_worker_cpu_s"] - d["dask_other_threads_cpu_s"]
    fraction = d["dask_overhead_fraction"]
    lines.append(
        f"| Dask's per-task overhead, against a plain worker process | **{overhead * 1000:.0f} "
        f"ms** a run of {d['task_cpu_s']['plain']:.2f} s CPU: "
        f"{d['dask_other_threads_cpu_s'] * 1000:.0f} ms of the worker's other threads, "
        f"{d['dask_overhead_outside_task_s'] * 1000:.0f} ms outside the task, "
        f"{own * 1000:.0f} ms the task's own thread | **{pct(fraction)}** "
        f"| < {d['dask_overhead_target']:.0%} {mark(fraction < d['dask_overhead_target'])} |"
    )
    ingest = d["ingest_msg_per_s"]
    ratio = d["ingest_4_over_1"]
    lost = "nothing lost" if d["ingest_lost"] == 0 else f"{d['ingest_lost']:,} lost"
    lines.append(
        f"| Ingest, 1 → 2 → 4 lines at the same total message rate "
        f"| {ingest['1']:,.0f} → {ingest['2']:,.0f} → {ingest['4']:,.0f} msg/s, {lost} "
        f"| 4 lines **{x(ratio)}** 1 line ({rounds_note(d['ingest_4_over_1_rounds'])}) "
        f"| ≥ {d['ingest_target']:g}× {mark(ratio >= d['ingest_target'])} |"
    )
    for unit, cpu, per in (
        ("stations", "sim_cpu_s_by_stations", "sim_per_station_ratio"),
        ("simulated hours", "sim_cpu_s_by_hours", "sim_per_hour_ratio"),
    ):
        sizes = ", ".join(d[cpu])
        unit_text = f"{unit} ({sizes}; 24 h)" if unit == "stations" else f"{unit} ({sizes})"
        per_unit = "per station-hour" if unit == "stations" else "per hour"
        lines.append(
            f"| Simulation CPU against {unit_text} "
            f"| {', '.join(f'{v:.2f}' for v in d[cpu].values())} s "
            f"| {per_unit} ×{', '.join(f'{v:.2f}' for v in d[per].values())} | no target |"
        )
    return "\n".join(lines)


# -- bench/optimizer.py ------------------------------------------------------------------------
OBJECTIVE_NAMES = {"good_per_hour": "good per hour", "margin_per_hour": "margin per hour"}


def setpoints_text(setpoints: Mapping[str, float]) -> str:
    return f"speed {setpoints['machining.speed']:.2f}, {setpoints['welding.temperature_c']:g} °C"


def seeds_text(seeds: list[int]) -> str:
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(str(s) for s in seeds)


def verdicts(rows: list[Mapping[str, Any]], field: str) -> str:
    counts: dict[str, int] = {}
    for row in rows:
        verdict = row[field]["verdict"]
        counts[verdict] = counts.get(verdict, 0) + 1
    order = ("better", "within noise", "worse", "same point")
    return ", ".join(f"{v} in {counts[v]}" for v in order if v in counts)


@table("optimizer-lattice", "optimizer")
def optimizer_lattice(d: Record) -> str:
    e = d["evaluation"]
    lines = [
        f"Run of {dated(d)}{quick_note(d)}: {d['lattice_points']} points, each "
        f"{e['hours']:g} hours × {e['replications']} replications on seed {e['seed']}, "
        f"{d['brute_force_s']:.0f} s on two processes (`bench/optimizer.py`).",
        "",
        "| objective | lattice optimum | value | default setpoints (1.0, 85 °C) "
        "| points within 98% |",
        "|---|---|---|---|---|",
    ]
    for objective, row in d["lattice"].items():
        unit = " EUR" if objective == "margin_per_hour" else ""
        lines.append(
            f"| {OBJECTIVE_NAMES[objective]} | {setpoints_text(row['optimum'])} "
            f"| {row['value']:.2f}{unit} | {row['defaults']:.2f} ({pct(row['defaults_share'])}) "
            f"| {row['within_98']} of {d['lattice_points']} |"
        )
    return "\n".join(lines)


@table("optimizer-searches", "optimizer")
def optimizer_searches(d: Record) -> str:
    seeds = d["search_seeds"]
    fresh = d["fresh"]
    lines = [
        f"Budget {d['budget']} evaluations, search seeds {seeds[0]} to {seeds[-1]}. The first "
        "three columns are on the evaluation seeds, the function the searches optimised; the "
        f"last two run each search's recommendation again on {fresh['replications']} fresh "
        f"48-hour replications (seed {fresh['seed']}), paired by seed: *better* means the 95% "
        "confidence interval of the paired difference lies above zero, *within noise* that it "
        "includes zero.",
        "",
        "| objective | optimizer, share of the lattice optimum | evaluations to reach 98% "
        "| random search, share | fresh seeds: optimizer against random "
        "| fresh seeds: optimizer against the defaults |",
        "|---|---|---|---|---|---|",
    ]
    for objective, runs in d["searches"].items():
        mine = [r for r in runs if r["method"] == "optimizer"]
        theirs = [r for r in runs if r["method"] == "random"]
        reach = [r["evaluations_to_98"] for r in mine if r["evaluations_to_98"] is not None]
        reach_text = f"{min(reach)} to {max(reach)}" if reach else "never"
        if len(reach) < len(mine):
            reach_text += f" ({len(mine) - len(reach)} never)"
        rows = d["comparisons"][objective]
        distinct = len({setpoints_text(r["setpoints"]) for r in mine})
        against_defaults = f"{verdicts(rows, 'against_defaults')} of {len(rows)}"
        if distinct < len(mine):
            against_defaults += (
                " (one comparison: every seed recommended the same point)"
                if distinct == 1
                else f" ({distinct} distinct points)"
            )
        lines.append(
            f"| {OBJECTIVE_NAMES[objective]} "
            f"| {', '.join(pct(r['share'], 1) for r in mine)} | {reach_text} "
            f"| {', '.join(pct(r['share'], 1) for r in theirs)} "
            f"| {verdicts(rows, 'against_random')} of {len(rows)} "
            f"| {against_defaults} |"
        )
    pairs = [row for rows in d["comparisons"].values() for row in rows]
    better = sum(row["against_random"]["verdict"] == "better" for row in pairs)
    worse = sum(row["against_random"]["verdict"] == "worse" for row in pairs)
    lines += [
        "",
        f"On fresh seeds, the optimizer's recommendation beat random search's beyond noise in "
        f"{better} of the {len(pairs)} (objective, search seed) pairs, and was worse beyond "
        f"noise in {worse}.",
    ]
    lines += [
        "",
        "With a binding constraint (a limit halfway between the unconstrained optimum's "
        "value and the best any point achieves), on the evaluation seeds:",
        "",
        "| objective | limit | the unconstrained optimum has | constrained lattice optimum "
        "| search seeds that found it, feasible |",
        "|---|---|---|---|---|",
    ]
    for row in d["constrained"]:
        value = (
            pct(row["bound"]) if row["limit"] == "max_defect_rate" else f"{row['bound']:.3f} kWh"
        )
        has = (
            pct(row["unconstrained_metric"])
            if row["limit"] == "max_defect_rate"
            else f"{row['unconstrained_metric']:.3f} kWh"
        )
        lines.append(
            f"| {OBJECTIVE_NAMES[row['objective']]} | `{row['limit']}` {value} | {has} "
            f"| {setpoints_text(row['constrained_optimum'])} "
            f"| {row['seeds_at_constrained_optimum']} of {len(seeds)} |"
        )
    return "\n".join(lines)


@table("optimizer-fresh", "optimizer")
def optimizer_fresh(d: Record) -> str:
    fresh = d["fresh"]
    labels: dict[str, list[str]] = {}

    def note(setpoints: Mapping[str, float], label: str) -> None:
        labels.setdefault(setpoints_text(setpoints), []).append(label)

    note({"machining.speed": 1.0, "welding.temperature_c": 85.0}, "the defaults")
    for objective, row in d["lattice"].items():
        note(row["optimum"], f"lattice optimum, {OBJECTIVE_NAMES[objective]}")
    for objective, runs in d["searches"].items():
        for method in ("optimizer", "random"):
            by_point: dict[str, list[int]] = {}
            for r in runs:
                if r["method"] == method:
                    by_point.setdefault(setpoints_text(r["setpoints"]), []).append(r["seed"])
            for point, seeds in by_point.items():
                labels.setdefault(point, []).append(
                    f"{method}, {OBJECTIVE_NAMES[objective]}, {seeds_text(seeds)}"
                )
    lines = [
        f"{fresh['replications']} fresh 48-hour runs per point (seed {fresh['seed']}): mean ± "
        "the half-width of its 95% confidence interval; in brackets the value on the "
        "evaluation seeds the searches saw.",
        "",
        "| setpoints | recommended as | good per hour | margin per hour (EUR) |",
        "|---|---|---|---|",
    ]
    for point in fresh["points"]:
        name = setpoints_text(point["setpoints"])
        cells = [
            f"{p['mean']:.2f} ± {p['half_ci']:.2f} ({p['evaluation_seeds']:.2f})"
            for p in (point["good_per_hour"], point["margin_per_hour"])
        ]
        lines.append(f"| {name} | {'; '.join(labels.get(name, []))} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


@table("optimizer-others", "optimizer")
def optimizer_others(d: Record) -> str:
    o = d["others"]
    lines = [
        f"Good parts per hour against the defaults ({o['good_per_hour_defaults']:.2f}), "
        f"each speed moved alone, {o['replications']} replications of {o['hours']:g} hours "
        "on the same seeds:",
        "",
        "| setpoint | change at each speed |",
        "|---|---|",
    ]
    for name, changes in o["change"].items():
        cells = ", ".join(f"{value}: {100 * change:+.1f}%" for value, change in changes.items())
        lines.append(f"| `{name}` | {cells} |")
    best = max(
        ((change, name, value) for name, c in o["change"].items() for value, change in c.items())
    )
    lines += [
        "",
        f"The best single move: `{best[1]}` {best[2]}, {100 * best[0]:+.1f}%. The defaults run "
        "on the same seeds as every move, so part of their lead is those seeds' luck.",
    ]
    return "\n".join(lines)


# -- bench/defect_quality.py -------------------------------------------------------------------
@table("optimizer-quality", "optimizer_quality")
def optimizer_quality(d: Record) -> str:
    objectives = {"good_per_hour": "good per hour", "margin_per_hour": "margin per hour"}
    seeds = ", ".join(str(seed) for seed in d["seeds"])
    lines = [
        f"Search seeds {seeds}; budget {d['budget']} evaluations of "
        f"{d['evaluation_replications']} runs; confirmation on {d['confirm_replications']} "
        f"fresh runs, doubled up to {d['confirm_max_replications']} while unclear. "
        "Shares of the true optimum (the truth's best lattice point) where each search "
        "left the line:",
        "",
        "| line | objective | true optimum | today's setpoints | optimizer: worst, mean "
        "| changes confirmed | random search: worst, mean |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, line in d["lines"].items():
        truth = line["truth"]
        for objective, o in line["objectives"].items():
            changes = sum(run["verdict"] == "change" for run in o["runs"]["optimizer"])
            lines.append(
                f"| {name} ({truth['hours']:g} h runs) | {objectives[objective]} "
                f"| {o['optimum_value']:,.2f} at {o['optimum']} | {pct(o['today_share'])} "
                f"| {pct(o['optimizer_worst'])}, {pct(o['optimizer_mean'])} "
                f"| {changes} of {len(o['runs']['optimizer'])} "
                f"| {pct(o['random_worst'])}, {pct(o['random_mean'])} |"
            )
    lines += [
        "",
        f"Worst share of the optimizer: **{pct(d['ratio'])}** (target {pct(d['target'])}); "
        f"{d['runs_met']} of {d['runs']} runs reached the target.",
    ]
    pairs = [
        (mine["share"], theirs["share"])
        for line in d["lines"].values()
        for o in line["objectives"].values()
        for mine, theirs in zip(o["runs"]["optimizer"], o["runs"]["random"], strict=True)
    ]
    if pairs:
        mean_mine = sum(m for m, _ in pairs) / len(pairs)
        mean_theirs = sum(t for _, t in pairs) / len(pairs)
        lines.append(
            f"Against random search, run by run: the optimizer's mean share {pct(mean_mine)} "
            f"against {pct(mean_theirs)} ({100 * (mean_mine - mean_theirs):+.2f} points), "
            f"higher in {sum(m > t for m, t in pairs)}, equal in "
            f"{sum(m == t for m, t in pairs)}, lower in {sum(m < t for m, t in pairs)} "
            f"of {len(pairs)}; worst {pct(min(m for m, _ in pairs))} against "
            f"{pct(min(t for _, t in pairs))}."
        )
    return "\n".join(lines)


@table("defect-seeds", "defect_quality")
def defect_seeds(d: Record) -> str:
    seeds = list(d["oracle"])
    rows = (
        ("scikit-learn's defaults (class weights balanced)", "library_defaults"),
        (
            "`make_defect_model` parameters, without the `QuantileBinner`",
            "parameters_without_binner",
        ),
        ("`make_defect_model` as shipped (with the `QuantileBinner`)", "shipped"),
    )
    lines = [
        f"| {d['oracle_days']} days, setpoints every 15 min; share of the oracle's ROC-AUC | "
        + " | ".join(f"seed {s}" for s in seeds)
        + " |",
        "|---|" + "---|" * len(seeds),
    ]
    for title, name in rows:
        cells = " | ".join(f"{d['oracle'][s][name]['oracle_ratio']:.3f}" for s in seeds)
        lines.append(f"| {title} | {cells} |")
    return "\n".join(lines)


@table("defect-measured", "defect_quality")
def defect_measured(d: Record) -> str:
    one = d["oracle"]["1"]
    m = one["shipped"]
    fed = d["fed"]
    csv = d["external_csv"]
    return "\n".join(
        [
            "| Test | Data | Result | Target |",
            "|---|---|---|---|",
            f"| model against the oracle | default line, {d['oracle_days']} days, setpoints "
            f"every 15 min, seed 1; the last 30% of parts ({m['parts']:,}, {m['defects']:,} "
            f"defective) | ROC-AUC {m['roc_auc']:.3f} against the oracle's "
            f"{m['oracle_roc_auc']:.3f}: **{m['oracle_ratio']:.3f}** of it; PR-AUC "
            f"{m['pr_auc']:.3f} (oracle {m['oracle_pr_auc']:.3f}); F1 {m['f1']:.2f} at 0.5 "
            "| ≥ 0.97; and at most 3 standard errors of the paired difference (bootstrap, "
            f"{one['bootstrap_se']:.3f}) above the oracle: a leak guard |",
            "| history fed over MQTT against the simulation | the same "
            f"{d['fed_hours'] / 24:g}-day run (seed 2) through publisher, ingest and recorder "
            "into the SQLite store, and "
            f"as a batch simulation; the last 30% ({fed['history']['parts']:,} parts, "
            f"{fed['history']['defects']:,} defective) | ROC-AUC "
            f"{fed['history']['roc_auc']:.3f} from history, {fed['simulation']['roc_auc']:.3f} "
            f"from the simulation: **difference {fed['difference']:.3f}** | ≤ 0.03 |",
            f"| external CSV | {csv['rows']:,} generated parts (a press and an oven, "
            "seed 8) with their true probability; the last 30% | ROC-AUC "
            f"**{csv['oracle_ratio']:.3f}** of the oracle's | ≥ 0.95 |",
        ]
    )


# -- bench/alarms.py ---------------------------------------------------------------------------
def _minutes(value: float | None) -> str:
    return "none found" if value is None else f"{value:.1f} min"


def _found(counts: list[int]) -> str:
    hit, total = counts
    return f"{hit} of {total}"


@table("alarms", "alarms")
def alarms(d: Record) -> str:
    ours, targets, met = d["ours"], d["targets"], d["met"]
    low, high = ours["false_per_day_95"]
    quiet = bool(met["false_per_day"] and met["false_per_day_upper"])
    baselines = d["baselines"]

    def row(name: str, figures: Record, named: str) -> str:
        lo, hi = figures["false_per_day_95"]
        return (
            f"| {name} | {named} | {figures['found']} of {figures['faults']} "
            f"({pct(figures['detection'])}) | {figures['false_per_day']:.2f} "
            f"({lo:.2f} to {hi:.2f}) | {_minutes(figures['mean_delay_min'])} |"
        )

    modes = ", ".join(f"{k} {_found(v)}" for k, v in d["by_mode"].items())
    sensors = ", ".join(f"{k} {_found(v)}" for k, v in d["by_sensor"].items())
    sizes = ", ".join(f"{k} {_found(v)}" for k, v in d["by_size"].items())
    pairs = ", ".join(f"{k} {_found(v)}" for k, v in d.get("by_mode_sensor", {}).items())
    settings = ", ".join(f"`{k}` {v:g}" for k, v in d["settings"].items())
    tuned_on = d.get("tuned_on", d["templates"])
    held_out = d.get("held_out_seeds", {})
    held = "".join(
        f"; {t}, a line the settings never saw, on seeds {', '.join(str(s) for s in seeds)}"
        for t, seeds in held_out.items()
    )
    per_template = [
        "",
        "| Template | Seeds | Found, the right sensor | False a day (95%) | Mean delay |",
        "|---|---|---|---|---|",
        *(
            f"| {t}{'' if t in tuned_on else ' (held out)'} | {len(f['seeds'])} "
            f"| {f['found']} of {f['faults']} ({pct(f['detection'])}) "
            f"| {f['false_per_day']:.2f} ({f['false_per_day_95'][0]:.2f} to "
            f"{f['false_per_day_95'][1]:.2f}) | {_minutes(f['mean_delay_min'])} |"
            for t, f in d.get("by_template", {}).items()
        ),
    ]
    return "\n".join(
        [
            f"Measured {dated(d)}{quick_note(d)}: {len(d['report_seeds'])} seeds of each of "
            f"{', '.join(tuned_on)}{held} ({ours['days']:.0f} line-days scored, "
            f"{d['faults_per_run']} faults a faulted day); settings chosen on seeds "
            f"{', '.join(str(s) for s in d['tuning']['seeds'])} of "
            f"{', '.join(tuned_on)}: {settings}.",
            "",
            "| Measure | Result | Target |",
            "|---|---|---|",
            f"| faults found, the right sensor named | **{ours['found']} of {ours['faults']}** "
            f"({pct(ours['detection'])}) | >= {pct(targets['detection'], 0)} "
            f"{mark(met['detection'])} |",
            f"| false alarms a day, pooled (95% interval) | **{ours['false_per_day']:.2f}** "
            f"({low:.2f} to {high:.2f}; {ours['false_alarms']} in {ours['days']:.0f} days) "
            f"| <= {targets['false_per_day']:g}, upper bound <= "
            f"{targets['false_per_day_upper']:g} {mark(quiet)} |",
            f"| mean delay, faults | **{ours['mean_delay_min']:.1f} min** | <= "
            f"{targets['mean_delay_min']:g} min {mark(met['mean_delay_min'])} |",
            f"| wear alarms | **{d['wear_found']} of {d['wear_episodes']}** episodes, longest "
            f"delay {d['wear_max_delay_min']:.1f} min | <= {targets['wear_delay_max_min']:g} min "
            f"{mark(met['wear_delay_max_min'])} |",
            f"| the kind named right (first alarm) | {pct(d['kind_named_right'])} | |",
            *(
                [
                    "| wear alarms annunciated, past the line's renewal plan | "
                    + "; ".join(
                        f"{t}: {w['annunciated']} of {w['raised']} "
                        f"({w['runs_with_plan']} runs learnt a plan)"
                        for t, w in d["wear_annunciated"].items()
                    )
                    + " | |"
                ]
                if "wear_annunciated" in d
                else []
            ),
            *(per_template if "by_template" in d else []),
            "",
            f"By mode: {modes}. By sensor: {sensors}. By size: {sizes}.",
            *(["", f"By mode and sensor: {pairs}."] if pairs else []),
            "",
            "| Detector | Credited at | Found | False a day (95%) | Mean delay |",
            "|---|---|---|---|---|",
            row("sensor watch", ours, "sensor"),
            row("sensor watch", d["ours_station"], "station"),
            row("band (clean min/max + 10%)", baselines["band"]["sensor"], "sensor"),
            row(
                f"PCA T² and SPE (limit at quantile {baselines['pca']['quantile']:g})",
                baselines["pca"]["sensor"],
                "sensor",
            ),
            row("PCA T² and SPE", baselines["pca"]["station"], "station"),
            row("isolation forest and guard (before)", baselines["forest"]["station"], "station"),
        ]
    )


@table("defect-fed-seeds", "defect_quality")
def defect_fed_seeds(d: Record) -> str:
    seeds = list(d["fed_seeds"])
    values = ", ".join(f"{v:+.3f}" for v in d["fed_seeds"].values())
    return (
        f"Over seeds {seeds[0]} to {seeds[-1]} of the {d['fed_hours'] / 24:g}-day run "
        f"(setpoints every {d['fed_seeds_explore_s'] / 60:g} min) the history and simulation "
        f"models differed by {values} (history minus simulation)."
    )


@table("defect-vs-baseline", "defect_vs_baseline")
def defect_vs_baseline(d: Record) -> str:
    lines = [
        "| Run | Kept candidate | PR-AUC (baseline; oracle) | F1 (baseline) "
        "| Share of the baseline | Share of the oracle's ROC-AUC |",
        "|---|---|---|---|---|---|",
    ]
    for name, run in d["runs"].items():
        oracle = f"{run['oracle_ratio']:.3f}" if "oracle_ratio" in run else "no oracle"
        ceiling = f"; {run['oracle_pr_auc']:.3f}" if "oracle_pr_auc" in run else ""
        lines.append(
            f"| {name.replace(' d ', ' days, ')} | {run['variant']} "
            f"| {run['pr_auc']:.3f} ({run['baseline_pr_auc']:.3f}{ceiling}) "
            f"| {run['f1']:.3f} ({run['baseline_f1']:.3f}) "
            f"| {run['share_of_baseline']:.3f} | {oracle} |"
        )
    return "\n".join(lines)


# -- bench/calibration.py ----------------------------------------------------------------------
@table("calibration", "calibration")
def calibration(d: Record) -> str:
    lines = [
        "| Hours of messages | Parameters learnt (5 seeds) | Hidden value inside the 95% interval "
        "| Median error, processing times | Median error, MTBF and MTTR |",
        "|---|---|---|---|---|",
    ]
    for hours, run in d["hours"].items():
        failures = run["failure_error_median"]
        lines.append(
            f"| {hours} | {run['parameters']} | {run['coverage']:.1%} "
            f"| {run['time_error_median']:.1%} "
            f"| {'none learnt' if failures is None else f'{failures:.1%}'} |"
        )
    shadow = d.get("shadow_forecasts")
    if shadow is not None:
        learned, nominal = shadow["learned_coverage"], shadow["nominal_coverage"]
        lines += [
            "",
            f"| Shadow forecasts of the next {shadow['horizon_h']:g} h ({shadow['forecasts']}) "
            "| Mean absolute error, good parts | 95% interval held the actual |",
            "|---|---|---|",
            f"| learnt line | {shadow['learned_mae_good_parts']:.1f} | {learned:.0%} |",
            f"| line file (nominal) | {shadow['nominal_mae_good_parts']:.1f} | {nominal:.0%} |",
            f"| the hidden file itself (the line's own spread) "
            f"| {shadow['hidden_file_mae_good_parts']:.1f} | not scored |",
            "",
            f"The learnt line's error is {shadow['error_ratio']:.2f} times smaller than the "
            f"file's (target at least {shadow['error_ratio_target']:g}); its intervals hold "
            f"{learned:.0%} of the actuals (target at least {shadow['coverage_target']:.0%}).",
        ]
    unfiled = d.get("unfiled")
    if unfiled is not None:
        hours = f"{unfiled['hours']:g} h"
        lines += [
            "",
            f"| {unfiled['line']}, learnt from {hours} of messages alone (seed) "
            "| Good parts per hour over a week, learnt line | The file's | Gap "
            f"| Over the same {hours}, learnt line | What the plant made | Gap "
            f"| The plant's {hours} against the file's |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for seed, run in unfiled["runs"].items():
            lines.append(
                f"| {seed} | {run['learnt_good_per_h']:.2f} | {unfiled['file_good_per_h']:.2f} "
                f"| {run['gap']:+.1%} | {run['learnt_hours_good_per_h']:.2f} "
                f"| {run['plant_good_per_h']:.2f} | {run['hours_gap']:+.1%} "
                f"| {run['plant_against_file']:+.1%} |"
            )
        stretches = unfiled["stretches"]
        lines += [
            "",
            f"Within {unfiled['target']:.0%} of the file's throughput on "
            f"{unfiled['within_target']} of {len(unfiled['runs'])} seeds (median gap "
            f"{unfiled['median_gap']:.1%}, worst {unfiled['worst_gap']:.1%}"
            + ("" if unfiled["worst_gap"] <= unfiled["target"] else ": not met")
            + f"). Over the same {hours}, within {unfiled['target']:.0%} of what the plant "
            f"made on {unfiled['hours_within_target']} of {len(unfiled['runs'])}. The "
            f"plant's own {hours} are within {unfiled['target']:.0%} of its file's mean "
            f"{hours} on {stretches['within_target']} of {stretches['seeds']} seeds "
            f"(worst {stretches['worst']:.1%}).",
        ]
    cost = d["learner_cost"]
    lines.append(
        f"\nLearning costs {cost['share_of_ingest_and_plant']:.1%} of the CPU time of the run "
        f"through the publisher and the ingest ({cost['per_1000_messages_ms']:.2f} ms per "
        f"1,000 messages; target at most {cost['target']:.0%})."
    )
    return "\n".join(lines)


# -- bench/site_crew.py ------------------------------------------------------------------------
@table("site-crew", "site_crew")
def site_crew(d: Record) -> str:
    ids = list(d["lines"])
    header = " | ".join(f"{i} shared | {i} own" for i in ids)
    lines = [f"| | {header} |", "|---|" + "---|---|" * len(ids)]

    def row(title: str, key: str, fmt: Callable[[float], str], own: bool = True) -> str:
        cells = []
        for i in ids:
            cells.append(fmt(d["lines"][i]["shared"][key]))
            cells.append(fmt(d["lines"][i]["own"][key]) if own else "not tallied")
        return f"| {title} | {' | '.join(cells)} |"

    lines += [
        row("down, machine-hours", "down_h", lambda v: f"{v:.1f}"),
        row("waiting for the technician, hours", "wait_h", lambda v: f"{v:.1f}", own=False),
        row("availability (at the constraint)", "availability", pct),
        row("good parts", "good", lambda v: f"{v:,.0f}"),
        "",
        "Sharing shipped fewer good parts than a crew of its own on "
        + " and ".join(
            f"{d['lines'][i]['seeds_fewer_good_shared']} of {len(d['seeds'])} seeds for {i}"
            for i in ids
        )
        + "; over the seeds, "
        + " and ".join(
            f"{i} shipped {pct(abs(d['lines'][i]['good_change']), 0)} "
            + ("less" if d["lines"][i]["good_change"] < 0 else "more")
            for i in ids
        )
        + " with the shared crew.",
    ]
    return "\n".join(lines)


# -- bench/validation.py -----------------------------------------------------------------------
@table("validation", "validation")
def validation(d: Record) -> str:
    lines = [
        "| quantity | theory | simulation (95% CI) | theory inside |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['quantity']} | {r['theory']} | {r['simulation']} | {r['inside']} |"
        for r in d["rows"]
    ]
    lines += [
        "",
        f"Little's law held within its exact boundary terms on {d['littles_law_held']} of "
        f"{d['littles_law_runs']} runs of the last experiment.",
    ]
    return "\n".join(lines)


# -- bench/sim_speed.py ------------------------------------------------------------------------
@table("sim-speed-scaling", "sim_speed")
def sim_speed_scaling(d: Record) -> str:
    stations = d["wall_s_by_stations"]
    span = d["wall_s_by_span"]
    return (
        f"The same run of `bench/sim_speed.py`{quick_note(d)}, on the shared 2-core "
        "development machine (so the scaling columns are noisy): the plant's wall time "
        f"was {', '.join(f'{v:.2f}' for v in stations.values())} s for "
        f"{', '.join(stations)} stations (linear: ×1, ×2, ×4, ×8), and "
        f"{', '.join(f'{v:.2f}' for v in span.values())} s for "
        f"{', '.join(k[1:] + '×' for k in span)} the simulated span."
    )


# -- bench/end_to_end.py -----------------------------------------------------------------------
@table("end-to-end", "end_to_end")
def end_to_end(d: Record) -> str:
    window = f"{d['window_s']:g}-s windows"
    lines = [
        f"Run of {dated(d)}{quick_note(d)}, {window}, load average "
        f"{d['machine']['load_1min']:.2f} at the end. Highest factor kept up: the line ran "
        "at it (median speed in force ≥ 95% of it), dropped nothing, the lag did not grow "
        "and the twin's good parts equal the plant's within the WIP. A quick run tries "
        "60x on every line and 75x on bottling, so a light line's highest is where the "
        "quick run stops, not where it fails.",
        "",
        "| Line | Broker | Highest factor kept up | Messages a second | RSS of `up` | Broker RSS |",
        "|---|---|---|---|---|---|",
    ]
    for key, found in d["results"].items():
        line, broker = key.split("/")
        factor = found["highest_factor"]
        broker_rss = found["broker_rss_mb"]
        lines.append(
            f"| {line} | {broker} | {'none' if factor is None else f'{factor:g}x'} "
            f"| {found['msg_per_s'] or 0:,} | {found['rss_mb'] or 0} MB "
            f"| {'not measured (external)' if broker_rss is None else f'{broker_rss} MB'} |"
        )
    top = d.get("at_top_speed") or {}
    if top:
        lines += [
            "",
            f"Asked for the top speed `set_speed` accepts ({d['top_speed']:g}x), on the "
            "embedded broker: the speed each line paced itself to, and whether the twin "
            "stayed consistent (nothing dropped, lag not growing, good parts equal within "
            "the WIP).",
            "",
            "| Line | Speed in force | Messages a second | RSS of `up` | Dropped | Good parts apart (WIP) | Consistent |",  # noqa: E501
            "|---|---|---|---|---|---|---|",
        ]
        for line, found in top.items():
            speed = found["speed_in_force"]
            lines.append(
                f"| {line} | {'unknown' if speed is None else f'{speed:g}x'} "
                f"| {found['msg_per_s']:,} | {found['rss_mb']} MB | {found['dropped']} "
                f"| {found['good_gap']} ({found['wip']}) | {mark(found['consistent'])} |"
            )
    ratio, vs_paho = d["ratio"], d["mosquitto_vs_paho"]
    lines += [
        "",
        f"Headline: bottling's embedded rate over 3,000 msg/s, **{ratio:.2f}** "
        f"{mark(ratio >= d['target'])}; the mosquitto path against bare paho "
        f"({d['bare_paho_msg_per_s']:,} msg/s in the same run), **{vs_paho:.2f}×** "
        f"(target {d['mosquitto_vs_paho_target']:g}×) {mark(vs_paho >= d['mosquitto_vs_paho_target'])}.",  # noqa: E501
    ]
    return "\n".join(lines)


# -- bench/startup.py --------------------------------------------------------------------------
@table("startup", "startup")
def startup(d: Record) -> str:
    bare = d["bare_plant_s"]
    rounds = d["rounds"]
    return "\n".join(
        [
            f"Run of {dated(d)}{quick_note(d)}, {d['days']:g} simulated days of the default "
            f"line, median of {rounds} rounds, load average {d['machine']['load_1min']:.2f} "
            "at the end. Ratios are times the bare plant's week in the same run, lower is "
            "better.",
            "",
            "| | Time | Times the bare week | Target |",
            "|---|---|---|---|",
            f"| the bare plant, the same span | {bare:.2f} s | 1× | |",
            f"| `up --demo` until `/healthz` answers | {d['time_to_api_s']:.2f} s "
            f"| **{d['ratio']:.1f}×** | ≤ {d['target']:g}× {mark(d['met'])} |",
            f"| until the history is on disk, the line live | {d['time_to_history_s']:.2f} s "
            f"| {d['history_ratio']:.1f}× | |",
            f"| the backfill alone ({d['samples']:,} samples) | {d['backfill_s']:.2f} s "
            f"| **{d['backfill_ratio']:.1f}×** | ≤ {d['backfill_target']:g}× "
            f"{mark(d['backfill_met'])} |",
        ]
    )


# -- bench/protocols.py ------------------------------------------------------------------------
def _range(values: list[float]) -> str:
    return f"{x(values[0], 3)} to {x(values[1], 3)}"


@table("protocols-opcua", "protocols")
def protocols_opcua(d: Record) -> str:
    return "\n".join(
        [
            "| OPC UA server | values written per second | against the bare server | target |",
            "|---|---|---|---|",
            f"| ours, {d['opcua_variables']} variables, {d['opcua_writes_per_round']:,} writes "
            f"a round | {d['opcua_values_per_s']:,} (bare: {d['opcua_bare_values_per_s']:,}) | "
            f"**{x(d['opcua_ratio'], 3)}** ({_range(d['opcua_range'])}) | ≥ "
            f"{x(d['opcua_target'], 1)} {mark(d['opcua_ratio'] >= d['opcua_target'])} |",
            "",
            f"Measured {dated(d)}{quick_note(d)}, {d['rounds']} rounds.",
        ]
    )


@table("protocols-sparkplug", "protocols")
def protocols_sparkplug(d: Record) -> str:
    met = d["sparkplug_ratio"] >= d["sparkplug_target"]
    smaller = d["sparkplug_bytes"] < d["json_bytes"]
    return "\n".join(
        [
            "| Sparkplug B against the JSON tree | Sparkplug B | JSON tree | ratio | target |",
            "|---|---|---|---|---|",
            f"| on the broker (edge node to a subscriber), msg/s | {d['sparkplug_msgs_per_s']:,} "
            f"| {d['json_msgs_per_s']:,} | **{x(d['sparkplug_ratio'], 3)}** "
            f"({_range(d['sparkplug_range'])}) | ≥ {x(d['sparkplug_target'], 1)} {mark(met)} |",
            f"| into a twin (the twin's source) | | | {x(d['sparkplug_twin_ratio'], 3)} "
            f"({_range(d['sparkplug_twin_range'])}) | none |",
            f"| bytes per DATA message | {d['sparkplug_bytes']:.0f} | {d['json_bytes']:.0f} | "
            f"{x(d['sparkplug_bytes'] / d['json_bytes'])} | smaller {mark(smaller)} |",
            "",
            f"Measured {dated(d)}{quick_note(d)}, {d['rounds']} rounds, "
            f"{d['stream_messages']:,} messages each.",
        ]
    )
