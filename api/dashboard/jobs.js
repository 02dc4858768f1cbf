// Background jobs of the line shown: the optimizer (its run and recommendation)
// and what-ifs (a run, the list, a forecast's table and its check against the line).

import { state } from "./state.js";
import { byTestId, el, headRow, setText } from "./dom.js";
import { fmtClock, fmtNum, fmtPct, isNum } from "./format.js";
import { api, linePath } from "./api.js";

function jobBox(holder, job) {
  const progress = isNum(job.progress) ? Math.max(0, Math.min(1, job.progress)) : 0;
  holder.replaceChildren(
    el("div", { class: "progress" }, [el("div", { class: "fill", style: `width:${(progress * 100).toFixed(0)}%` })]),
    // The log line only while it runs: a finished job's outcome is its result, shown as a table.
    el("span", { class: `job-status ${job.status}`, text: `${job.kind || "job"} ${job.status} ${fmtPct(progress, 0)}${job.status === "running" && job.stage ? ` · ${job.stage}` : ""}${job.error ? ` · ${job.error}` : ""}` }),
  );
}

export async function runJob(path, body, holder) {
  holder.replaceChildren(el("span", { class: "muted", text: "submitting…" }));
  let result = await api("POST", path, body);
  if (!result.ok) {
    holder.replaceChildren(el("span", { class: "bad", text: result.error }));
    return null;
  }
  let job = result.data;
  while (job && (job.status === "queued" || job.status === "running")) {
    jobBox(holder, job);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    result = await api("GET", `/jobs/${encodeURIComponent(job.id)}`);
    if (!result.ok) {
      holder.replaceChildren(el("span", { class: "bad", text: `job: ${result.error}` }));
      return null;
    }
    job = result.data;
  }
  jobBox(holder, job);
  if (job.status !== "succeeded") return null;
  const out = await api("GET", job.result_url || `/jobs/${encodeURIComponent(job.id)}/result`);
  if (!out.ok) {
    holder.append(el("span", { class: "bad", text: ` result: ${out.error}` }));
    return null;
  }
  return out.data;
}

export async function loadRecommendation() {
  const generation = state.generation;
  const holder = byTestId("recommendation");
  const result = await api("GET", linePath("/optimize/recommendation"));
  if (generation !== state.generation) return;
  if (result.status === 404 || result.status === 405) {
    // The route's own 404 says why; the framework's bare "Not Found" means no optimizer here.
    const detail = result.data && result.data.detail;
    const missing = result.status === 405 || !detail || detail === "Not Found";
    setText(holder, missing ? "the optimizer is not available on this server" : `no recommendation yet: ${detail}`);
    return;
  }
  if (!result.ok) {
    setText(holder, `recommendation: ${result.error}`);
    return;
  }
  const setpoints = result.data.setpoints || {};
  const keep = result.data.verdict === "keep";
  const column = keep ? "Best candidate" : "Recommended";
  const table = el("table", { class: "small-table" }, [headRow(["Station", "Setpoint", "Now", column], [2, 3])]);
  for (const [station, values] of Object.entries(setpoints)) {
    for (const [name, value] of Object.entries(values)) {
      const now = ((state.stations.get(station) || {}).process || {})[name];
      table.append(el("tr", {}, [el("td", { text: station }), el("td", { text: name }), el("td", { class: "num", text: setpointText(`${station}.${name}`, now) }), el("td", { class: "num", text: setpointText(`${station}.${name}`, value) })]));
    }
  }
  holder.classList.remove("muted");
  holder.replaceChildren(verdictLine(result.data), table, ...recommendationWorth(result.data));
  const apply = byTestId("optimize-apply");
  apply.disabled = keep;
  apply.title = keep ? "no significant gain over today's setpoints: nothing to apply" : "";
}

// Whether the fresh runs confirmed a gain (the recommendation's verdict): a change
// only when the paired difference's interval lies above zero.
function verdictLine(data) {
  const verdict = data.verdict;
  const text = verdict === "keep"
    ? "No significant gain on fresh runs: keep today's setpoints."
    : verdict === "change"
      ? "A significant gain over today's setpoints on fresh runs: change to the recommended setpoints."
      : "Not confirmed on fresh runs.";
  return el("p", { class: verdict === "change" ? "ok" : "muted", "data-testid": "recommendation-verdict", text });
}

// The setpoints the optimizer may choose on the line shown (GET /optimize/space):
// one checkbox each, the line's default choice checked; the form sends the checked
// ones as vars.
export async function loadOptimizerSpace() {
  const generation = state.generation;
  const holder = byTestId("optimize-setpoints");
  const result = await api("GET", linePath("/optimize/space"));
  if (generation !== state.generation) return;
  if (!result.ok) {
    setText(holder, `setpoints: ${result.error}`);
    return;
  }
  const space = result.data;
  const boxes = space.setpoints.map((item) =>
    el("label", { class: "setpoint-choice" }, [
      el("input", { type: "checkbox", name: "vars", value: item.key, ...(item.in_default_space ? { checked: "" } : {}) }),
      ` ${item.key} (${setpointText(item.key, item.min)} to ${setpointText(item.key, item.max)}, today ${setpointText(item.key, item.default)})`,
    ]),
  );
  const note = space.reason ? [el("p", { class: "muted small", text: space.reason })] : [];
  holder.replaceChildren(...(boxes.length ? boxes : [el("span", { class: "muted", text: "this line has no setpoint with a range" })]), ...note);
}

// A setpoint's value with its unit: a speed factor (×) or a temperature (°C).
function setpointText(key, value) {
  return key.endsWith(".temperature_c") ? fmtNum(value, 0, "°C") : fmtNum(value, 2, "×");
}

// The checked setpoints, for POST /optimize's vars (none checked: the line's default).
export function chosenVars(form) {
  const chosen = [...form.querySelectorAll('input[name="vars"]:checked')].map((box) => box.value);
  return chosen.length ? chosen : null;
}

// What the recommendation is worth: its objective and unit, the expected value over
// one run of the horizon with its 95% prediction interval, and today's beside it,
// both from fresh seeds (GET /optimize/recommendation's confirmation).
function recommendationWorth(data) {
  const check = data.confirmation;
  const objective = (data.objective || "").replaceAll("_", " ");
  if (!check) {
    return [el("p", { class: "small", "data-testid": "recommendation-worth", text: `objective ${objective}: ${fmtNum(data.best_value, 2)} ${data.unit || "per calendar hour"} in the search (not confirmed on fresh seeds)` })];
  }
  const range = (iv) => (isNum(iv.low) && isNum(iv.high) ? ` [${fmtNum(iv.low, 1)}, ${fmtNum(iv.high, 1)}]` : "");
  const rows = [
    [data.verdict === "keep" ? "Best candidate" : "Recommended", check.recommended],
    ["Today", check.current],
    ["Difference", check.difference],
  ];
  const table = el("table", { class: "small-table", "data-testid": "recommendation-worth" }, [
    el("tr", {}, [el("th", { text: `${objective} (${check.unit})` }), el("th", { text: `over ${fmtNum(check.hours, 0)} h` })]),
    ...rows.map(([label, iv]) => el("tr", {}, [el("td", { text: label }), el("td", { class: "num", text: `${fmtNum(iv.mean, 1)}${range(iv)}` })])),
  ]);
  const level = isNum(check.confidence) ? check.confidence : 0.95;
  const shared = check.candidates > 1 ? `, ${check.candidates} candidates compared` : "";
  const note = `${check.replications} fresh runs each; 95% interval for one run of ${fmtNum(check.hours, 0)} h (difference: ${fmtNum(level * 100, 1)}% interval of the mean${shared}).` +
    (isNum(check.planned_share) ? ` Per planned production hour: divide by ${fmtNum(check.planned_share, 2)}.` : "");
  return [table, el("p", { class: "muted small", text: note })];
}

// A scenario's forecast (GET /scenarios/{id}): per KPI, its unit, the baseline,
// the scenario and their paired difference, each a mean with its 95% interval's
// half width; "n/a" where the KPI does not apply, with the reason under the table.
const SCENARIO_UNITS = {
  good_parts: "parts",
  scrap_parts: "parts",
  planned_production_h: "h of planned production",
  throughput_per_h: "good parts per calendar hour",
  throughput_per_planned_h: "good parts per planned hour",
  yield_ratio: "% of parts made",
  scrap_ratio: "% of parts made",
  oee: "% (over planned busy time)",
  mean_wip: "parts",
  cycle_time_s: "s",
  cost_per_good_part: "per good part",
  energy_per_good_part_kwh: "kWh per good part",
};
const SCENARIO_RATIOS = new Set(["yield_ratio", "scrap_ratio", "oee"]);
// Decimals a plant engineer reads each in: a mean of parts to a tenth, seconds whole.
const SCENARIO_DIGITS = {
  good_parts: 1,
  scrap_parts: 1,
  planned_production_h: 2,
  throughput_per_h: 1,
  throughput_per_planned_h: 1,
  mean_wip: 1,
  cycle_time_s: 0,
  cost_per_good_part: 2,
  energy_per_good_part_kwh: 3,
};

// Baseline and scenario: the 95% prediction interval, where the line's one run will
// fall, as [low, high]. Difference: mean ± half width of its mean's interval, or
// [low, high] when that was clipped to its range (a ratio's [-1, 1]).
function scenarioInterval(entry, fmt, difference) {
  if (!difference) {
    return isNum(entry.prediction_low) && isNum(entry.prediction_high) ? ` [${fmt(entry.prediction_low)}, ${fmt(entry.prediction_high)}]` : "";
  }
  if (!isNum(entry.half_width)) return "";
  const clipped = isNum(entry.low) && isNum(entry.high) &&
    Math.abs(entry.high - entry.low - 2 * entry.half_width) > 1e-9 * Math.max(1, Math.abs(entry.mean));
  return clipped ? ` [${fmt(entry.low)}, ${fmt(entry.high)}]` : ` ± ${fmt(entry.half_width)}`;
}

function scenarioCell(kpi, entry, difference) {
  if (!entry || !isNum(entry.mean)) return el("td", { class: "num", text: "n/a" });
  if (SCENARIO_RATIOS.has(kpi)) {
    const sign = difference && entry.mean > 0 ? "+" : "";
    const text = `${sign}${fmtPct(entry.mean)}${scenarioInterval(entry, fmtPct, difference)}`;
    // A ratio above 100% is marked, never shown as if it were plain.
    const over = !difference && entry.mean > 1;
    return el("td", { class: over ? "num over-100" : "num", text: over ? `${text} (above 100%: check)` : text });
  }
  const digits = SCENARIO_DIGITS[kpi] ?? 3;
  const fmt = (v) => fmtNum(v, digits);
  return el("td", { class: "num", text: `${fmt(entry.mean)}${scenarioInterval(entry, fmt, difference)}` });
}

function scenarioTable(view) {
  const result = (view && view.result) || {};
  const kpis = result.kpis || {};
  const holder = el("div", {});
  const horizon = isNum(result.horizon_s) ? `${fmtNum(result.horizon_s / 3600, 2)} h` : "";
  const when = result.fork_time_of_day
    ? `from ${result.fork_time_of_day} to ${result.end_time_of_day}`
    : `from sim ${fmtClock(result.fork_sim_time_s)}`;
  holder.append(el("p", { class: "muted small", "data-testid": "scenario-when", text: `Forecast ${when} (${horizon}), ${result.replications} replications, seed ${result.seed}: baseline and scenario, the mean and [the 95% range one run of the line falls in]; difference, the mean ± its 95% interval.` }));
  const table = el("table", { class: "small-table", "data-testid": "scenario-table" }, [headRow(["KPI", "Unit", "Baseline", "Scenario", "Difference"], [2, 3, 4])]);
  const reasons = [];
  for (const [kpi, forecast] of Object.entries(kpis)) {
    const row = el("tr", { "data-kpi": kpi }, [
      el("td", { text: kpi.replaceAll("_", " ") }),
      el("td", { class: "muted small", text: SCENARIO_UNITS[kpi] || "" }),
      scenarioCell(kpi, forecast.baseline, false),
      scenarioCell(kpi, forecast.scenario, false),
      scenarioCell(kpi, forecast.difference, true),
    ]);
    if (forecast.not_applicable) {
      row.title = forecast.not_applicable;
      if (!reasons.includes(forecast.not_applicable)) reasons.push(forecast.not_applicable);
    }
    table.append(row);
  }
  holder.append(table);
  if (reasons.length) {
    holder.append(el("ul", { class: "scenario-notes muted small", "data-testid": "scenario-na" }, reasons.map((reason) => el("li", { text: reason }))));
  }
  return holder;
}

// Every what-if the API ran (GET /scenarios), however it was started.
export async function pollScenarios() {
  const generation = state.generation;
  const list = byTestId("scenario-list");
  const result = await api("GET", linePath("/scenarios"));
  if (generation !== state.generation) return;
  if (!result.ok) {
    list.replaceChildren(el("li", { class: "muted", text: `what-ifs: ${result.error}` }));
    return;
  }
  const scenarios = result.data.scenarios || [];
  if (!scenarios.length) {
    list.replaceChildren(el("li", { class: "muted", text: "none yet" }));
    return;
  }
  list.replaceChildren(
    ...scenarios.map((item) => {
      const when = item.fork_time_of_day || `sim ${fmtClock(item.fork_sim_time_s)}`;
      const stop = item.fork_planned_stop ? ` (${item.fork_planned_stop})` : "";
      const button = el("button", {
        type: "button",
        "data-testid": "scenario-item",
        "data-scenario": item.id,
        "aria-pressed": String(state.scenarioShown === item.id),
        text: `${when}${stop} + ${fmtNum(item.horizon_h, 2)} h · ${item.replications} reps · ${item.job.status}`,
      });
      button.addEventListener("click", () => showScenario(item.id));
      return el("li", {}, [button]);
    }),
  );
}

export async function showScenario(scenarioId) {
  state.scenarioShown = scenarioId;
  const holder = byTestId("scenario-result");
  const answer = await api("GET", linePath(`/scenarios/${encodeURIComponent(scenarioId)}`));
  if (state.scenarioShown !== scenarioId) return;
  if (!answer.ok) {
    holder.replaceChildren(el("p", { class: "bad", text: `what-if: ${answer.error}` }));
    return;
  }
  if (!answer.data.result) {
    holder.replaceChildren(el("p", { class: "muted", text: `what-if ${answer.data.job.status}${answer.data.job.error ? `: ${answer.data.job.error}` : ""}` }));
    return;
  }
  const check = el("p", { class: "muted", "data-testid": "scenario-check" });
  holder.replaceChildren(scenarioTable(answer.data), check);
  for (const button of document.querySelectorAll('[data-testid="scenario-item"]')) {
    button.setAttribute("aria-pressed", String(button.dataset.scenario === scenarioId));
  }
  followForecastCheck(scenarioId, check);
}

// The forecast against what the live line then did (GET /scenarios/{id}), polled
// until the twin's clock has passed the forecast's end.
async function followForecastCheck(scenarioId, holder) {
  const path = linePath(`/scenarios/${encodeURIComponent(scenarioId)}`); // its line's
  for (;;) {
    if (!holder.isConnected) return; // another what-if is shown now
    const answer = await api("GET", path);
    if (!answer.ok) {
      setText(holder, `forecast check: ${answer.error}`);
      return;
    }
    const check = answer.data.check;
    if (!check) return;
    if (check.status === "checked") {
      if (!isNum(check.forecast_throughput_per_h)) {
        setText(holder, `forecast check: the line made ${fmtNum(check.actual_throughput_per_h, 1)} good parts per calendar hour; the baseline has no throughput forecast here (not applicable)`);
        return;
      }
      const verdict = check.within_interval === null ? "" : check.within_interval ? " ✓ within the interval" : " ✗ outside the interval";
      setText(holder, `forecast check: the line made ${fmtNum(check.actual_throughput_per_h, 1)} good parts per calendar hour; the baseline forecast ${fmtNum(check.forecast_throughput_per_h, 1)} [${fmtNum(check.low, 1)}, ${fmtNum(check.high, 1)}]${verdict}`);
      holder.className = check.within_interval === false ? "bad" : "ok";
      return;
    }
    setText(holder, `forecast check: waiting for the line to reach sim ${fmtNum(check.end_sim_time_s / 3600, 2)} h (now ${fmtNum((check.twin_sim_time_s || 0) / 3600, 2)} h)`);
    await new Promise((resolve) => setTimeout(resolve, 5000));
  }
}
