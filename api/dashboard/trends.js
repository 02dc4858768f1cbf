// A station's trends in its detail: each of its sensors and its OEE over the last
// hours, read from /history in 2-minute means and drawn as inline SVG (nothing is
// loaded from another host). Refreshed every half minute while the detail is open.

import { state } from "./state.js";
import { byTestId, el, svg } from "./dom.js";
import { api, linePath } from "./api.js";
import { fmtNum, fmtPct } from "./format.js";

export const TREND_HOURS = 4;
const EVERY = "2m";
const REFRESH_MS = 30_000;
const WIDTH = 240;
const HEIGHT = 44;
// [measurement, field, label, how a value reads]
const SERIES = [
  ["telemetry", "temperature_c", "temperature", (v) => fmtNum(v, 1, "°C")],
  ["telemetry", "vibration_mm_s", "vibration", (v) => fmtNum(v, 2, "mm/s")],
  ["telemetry", "spindle_rpm", "spindle", (v) => fmtNum(v, 0, "rpm")],
  ["telemetry", "power_kw", "power", (v) => fmtNum(v, 1, "kW")],
  ["telemetry", "pressure_bar", "pressure", (v) => fmtNum(v, 2, "bar")],
  ["kpi", "oee", "OEE", (v) => fmtPct(v)],
];

let shownFor = null;
let shownAt = 0;
let loading = false;

// Every series of an answer (live and backfilled history, say) in time order.
function points(answer) {
  const merged = [];
  for (const series of answer.series || []) merged.push(...series.points);
  merged.sort((a, b) => a.t_ms - b.t_ms);
  return merged;
}

function chart(values, startMs, endMs) {
  let low = Math.min(...values.map((p) => p.value));
  let high = Math.max(...values.map((p) => p.value));
  if (high === low) {
    high += 1;
    low -= 1;
  }
  const x = (t) => ((t - startMs) / (endMs - startMs)) * WIDTH;
  const y = (v) => HEIGHT - 2 - ((v - low) / (high - low)) * (HEIGHT - 4);
  const drawing = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: "trend", preserveAspectRatio: "none" });
  drawing.append(
    svg("polyline", {
      class: "trend-line",
      points: values.map((p) => `${x(p.t_ms).toFixed(1)},${y(p.value).toFixed(1)}`).join(" "),
    }),
  );
  return drawing;
}

function row(field, label, read, values, startMs, endMs) {
  const last = values[values.length - 1].value;
  const low = Math.min(...values.map((p) => p.value));
  const high = Math.max(...values.map((p) => p.value));
  return el("div", { class: "trend-row", "data-testid": `trend-${field}`, "data-points": String(values.length), "data-first": String(values[0].value) }, [
    el("span", { class: "label", text: label }),
    chart(values, startMs, endMs),
    el("span", { class: "num", text: read(last), title: `last 2-min mean; ${read(low)} to ${read(high)} over ${TREND_HOURS} h` }),
  ]);
}

export async function renderTrends() {
  const id = state.selected;
  const node = byTestId("detail-trends");
  const now = Date.now();
  if (!id || !node || loading || (shownFor === id && now - shownAt < REFRESH_MS)) return;
  loading = true;
  // Another station's trends never stand under this one's name while it loads.
  if (shownFor !== id) node.replaceChildren(el("p", { class: "muted", text: "loading…" }));
  try {
    const startMs = now - TREND_HOURS * 3600 * 1000;
    const station = encodeURIComponent(id);
    const answers = await Promise.all(
      SERIES.map(([measurement, field]) =>
        api("GET", linePath(`/history?measurement=${measurement}&field=${field}&station=${station}&start=${startMs}&end=${now}&every=${EVERY}`)),
      ),
    );
    if (state.selected !== id) return;
    const rows = [];
    const problems = [];
    SERIES.forEach(([, field, label, read], index) => {
      const answer = answers[index];
      if (!answer.ok) {
        problems.push(`${label}: ${answer.error}`);
        return;
      }
      const values = points(answer.data);
      if (values.length) rows.push(row(field, label, read, values, startMs, now));
    });
    node.dataset.startMs = String(startMs);
    node.dataset.endMs = String(now);
    if (!rows.length) rows.push(el("p", { class: "muted", text: problems.join("; ") || `no history in the last ${TREND_HOURS} h yet` }));
    node.replaceChildren(...rows);
    shownFor = id;
    shownAt = Date.now();
  } finally {
    loading = false;
  }
}
