// The line learnt from its messages beside the line file (GET /model), and the
// shadow forecasts of both against what the line then did (GET /forecasts).
// Drifted parameters are also alarms (alarms.js). The learnt line is refitted on
// every GET /model, so it is asked for every 30 s, the forecasts every 10 s.

import { state } from "./state.js";
import { byTestId, el, headRow, setText } from "./dom.js";
import { fmtDuration, fmtInt, fmtPct, isNum } from "./format.js";
import { api, linePath, stationHref } from "./api.js";
import { whenText } from "./economics.js";

const MODEL_LABELS = { learned: "learnt line", nominal: "line file" };
const ROWS = 14; // parameters listed; the rest are counted
const LINE = "(line)"; // the station of the line's own parameters (its release)

// A parameter's values in one unit per row, chosen by the line file's value (else
// the learnt one): seconds, minutes or hours; a share as a percentage.
function rowUnit(p) {
  if (p.unit !== "s") return p.unit;
  const scale = isNum(p.nominal) ? p.nominal : p.value;
  if (scale < 90) return "s";
  return scale < 5400 ? "min" : "h";
}

function valueText(value, unit) {
  if (!isNum(value)) return "–";
  if (unit === "share") return fmtPct(value, 2);
  if (unit === "wear") return `${fmtPct(value, 2)} of tool life`;
  if (unit === "parts") return `${fmtInt(value)} parts`;
  if (unit === "s") return `${value.toFixed(value < 10 ? 1 : 0)} s`;
  if (unit === "min") return `${(value / 60).toFixed(1)} min`;
  if (unit === "h") return `${(value / 3600).toFixed(2)} h`;
  return `${value.toPrecision(3)} ${unit}`;
}

function parameterName(path) {
  const names = {
    "processing_time.mean_s": "processing time (mean)",
    "failures.mtbf_s": "MTBF",
    "failures.mttr_s": "MTTR",
    "failures.crew_wait_s": "waiting for the repair crew (mean per breakdown)",
    "setup.time.mean_s": "changeover time (mean)",
    "microstops.mean_between_s": "processing time between jams",
    "microstops.duration.mean_s": "jam duration (mean)",
    defect_probability: "defects (scrap + rework)",
    "process.quality.base_defect_probability": "defects at best setpoints, new tool",
    "process.quality.wear_sensitivity": "defect log-odds per wear²",
    "process.quality.best_speed": "speed with fewest defects",
    "process.quality.speed_tolerance": "speed tolerance (defect odds ×2.7 at best ± it)",
    "process.quality.best_temperature_c": "temperature with fewest defects",
    "process.quality.temperature_tolerance_c": "temperature tolerance (defect odds ×2.7 at best ± it)",
    "process.wear.per_part": "tool wear per part (speed 1)",
    "process.wear.preventive_at": "tool wear maintained at",
    "process.wear.maintenance_time.mean_s": "maintenance time (mean)",
    "release.interarrival.mean_s": "time between arrivals (mean)",
    "release.wip_cap": "parts in the loop (CONWIP)",
  };
  if (names[path]) return names[path];
  const product = /^processing_time_by_product\.(.+)\.mean_s$/.exec(path);
  return product ? `processing time, ${product[1]} (mean)` : path;
}

// Where a parameter stands against the line file: drifted (the API's verdict: its
// interval for all the parameters at once leaves the file's value out, and it moved
// 5% or more), to watch (only its own 95% interval does), or as filed.
function standing(p, count) {
  if (p.drifted) return { key: "drifted", text: "drifted", class: "bad", title: "" };
  if (isNum(p.nominal) && (p.nominal < p.low || p.nominal > p.high)) {
    return {
      key: "watch",
      text: "watch",
      class: "warn",
      title:
        `its 95% interval leaves the file's value out, but not beyond chance over all ${count} ` +
        "parameters at once, or it moved less than 5%: not called drift yet",
    };
  }
  return { key: "filed", text: "as filed", class: "muted", title: "" };
}

const RANK = { drifted: 0, watch: 1, filed: 2 };

export async function pollModel() {
  const generation = state.generation;
  const result = await api("GET", linePath("/model"));
  if (generation !== state.generation) return;
  const holder = byTestId("learnt-parameters");
  if (!result.ok) {
    setText(byTestId("learnt-summary"), "");
    holder.replaceChildren(el("p", { class: "muted", text: `learnt line: ${result.error}` }));
    return;
  }
  const { parameters, not_learnt: notLearnt, min_samples: minSamples } = result.data;
  const standings = new Map(parameters.map((p) => [p, standing(p, parameters.length)]));
  const drifted = parameters.filter((p) => standings.get(p).key === "drifted").length;
  const watched = parameters.filter((p) => standings.get(p).key === "watch").length;
  const summary = byTestId("learnt-summary");
  setText(
    summary,
    `${parameters.length} parameters learnt, ${drifted} drifted from the line file, ${watched} to watch; ` +
      `${notLearnt.length} not yet (most need ${minSamples} parts, breakdowns or changeovers; a setpoint's ` +
      "best value needs parts made at several; hover for each)",
  );
  summary.title = notLearnt.join("\n");
  const order = [...parameters].sort(
    (a, b) =>
      RANK[standings.get(a).key] - RANK[standings.get(b).key] ||
      Math.abs(Math.log(b.ratio || 1)) - Math.abs(Math.log(a.ratio || 1)),
  );
  const head = ["Station", "Parameter", "Line file", "Learnt", "95% interval", "× file", "n", ""];
  const table = el("table", { class: "small-table", "data-testid": "learnt-table" }, [
    headRow(head, [2, 3, 4, 5, 6]),
  ]);
  for (const p of order.slice(0, ROWS)) {
    const unit = rowUnit(p);
    const stand = standings.get(p);
    table.append(
      el("tr", { class: p.drifted ? "drifted" : "", "data-testid": "learnt-row" }, [
        el("td", {}, [p.station === LINE ? el("span", { text: "the line" }) : el("a", { href: stationHref(p.station), text: p.station })]),
        el("td", { text: parameterName(p.parameter), title: p.detail || "" }),
        el("td", { class: "num", text: valueText(p.nominal, unit) }),
        el("td", { class: "num", "data-testid": "learnt-value", text: valueText(p.value, unit) }),
        el("td", { class: "num", text: `${valueText(p.low, unit)} – ${valueText(p.high, unit)}` }),
        el("td", { class: "num", text: isNum(p.ratio) ? `${p.ratio.toFixed(2)}×` : "–" }),
        el("td", { class: "num", text: fmtInt(p.n) }),
        el("td", { class: stand.class, "data-testid": "learnt-standing", text: stand.text, title: stand.title }),
      ]),
    );
  }
  const more = order.length > ROWS ? [el("p", { class: "muted small", text: `${order.length - ROWS} more in GET /model` })] : [];
  holder.replaceChildren(table, ...more);
}

function predictedText(predicted) {
  if (!predicted || !isNum(predicted.mean)) return "–";
  const interval = isNum(predicted.low) && isNum(predicted.high) ? ` (${fmtInt(predicted.low)}–${fmtInt(predicted.high)})` : "";
  return `${fmtInt(predicted.mean)}${interval}`;
}

function scoreTable(scores) {
  const table = el("table", { class: "small-table", "data-testid": "forecast-scores" }, [
    headRow(["Horizon", "Model", "Scored", "Mean abs. error (good parts)", "Interval held the actual"], [2, 3, 4]),
  ]);
  for (const group of scores) {
    for (const model of group.models) {
      table.append(
        el("tr", {}, [
          el("td", { text: group.horizon }),
          el("td", { text: MODEL_LABELS[model.model] || model.model }),
          el("td", { class: "num", text: fmtInt(model.scored) }),
          el("td", { class: "num", text: model.scored ? model.mean_abs_error_good_parts.toFixed(1) : "not scored yet" }),
          el("td", { class: "num", text: model.scored ? fmtPct(model.coverage, 0) : "not scored yet" }),
        ]),
      );
    }
  }
  return table;
}

function forecastTable(forecasts) {
  const table = el("table", { class: "small-table", "data-testid": "forecast-table" }, [
    headRow(["Forked", "Horizon", "Learnt line (95%)", "Line file (95%)", "Actual good parts"], [2, 3, 4]),
  ]);
  for (const forecast of forecasts) {
    const byModel = Object.fromEntries(forecast.forecasts.map((m) => [m.model, m]));
    const mark = (model) => {
      if (!model) return "–";
      const text = predictedText(model.good_parts);
      if (forecast.status !== "scored" || model.covered === null) return text;
      return `${text} ${model.covered ? "✓" : "✗"}`;
    };
    const actual =
      forecast.status === "scored" ? fmtInt(forecast.actual_good_parts) : `due at ${whenText(forecast.end_sim_time_s)}`;
    table.append(
      el("tr", { "data-testid": "forecast-row", "data-status": forecast.status }, [
        el("td", { text: whenText(forecast.fork_sim_time_s) }),
        el("td", { text: `${forecast.label} (${fmtDuration(forecast.horizon_s)})` }),
        el("td", { class: "num", text: mark(byModel.learned) }),
        el("td", { class: "num", text: mark(byModel.nominal) }),
        el("td", { class: "num", "data-testid": "forecast-actual", text: actual }),
      ]),
    );
  }
  return table;
}

export async function pollForecasts() {
  const generation = state.generation;
  const result = await api("GET", `${linePath("/forecasts")}?limit=8`);
  if (generation !== state.generation) return;
  const holder = byTestId("forecasts");
  if (!result.ok) {
    setText(byTestId("forecasts-status"), "");
    holder.replaceChildren(el("p", { class: "muted", text: `forecasts: ${result.error}` }));
    return;
  }
  const data = result.data;
  const every = isNum(data.period_s) ? `every ${fmtDuration(data.period_s)} of line time` : "off";
  setText(byTestId("forecasts-status"), `${data.status}; forked ${every}; ${data.waiting} waiting for the line`);
  if (!data.forecasts.length) {
    holder.replaceChildren(el("p", { class: "muted", text: "no forecast yet" }));
    return;
  }
  holder.replaceChildren(scoreTable(data.scores), forecastTable(data.forecasts));
}
