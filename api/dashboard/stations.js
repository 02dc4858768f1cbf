// The station cards: state, input buffer, OEE, output, defect risk,
// and a sparkline per sensor of its last SPARK_POINTS samples.

import { state } from "./state.js";
import { byTestId, el, setText, svg } from "./dom.js";
import { fmtInt, fmtNum, isNum, setRatio } from "./format.js";
import { stationHref } from "./api.js";
import { bottleneck, stateLabel, stateTitle, stationRiskText } from "./line.js";
import { renderDetail } from "./detail.js";

const SPARK_POINTS = 90;
const SENSORS = [
  ["temperature_c", "Temperature", "°C"],
  ["vibration_mm_s", "Vibration", "mm/s"],
  ["power_kw", "Power", "kW"],
  ["spindle_rpm", "Spindle", "rpm"],
  ["pressure_bar", "Pressure", "bar"],
];

// A station's view into the state, and its new telemetry sample into its sparklines.
export function putStation(station) {
  state.stations.set(station.id, station);
  const t = station.telemetry;
  if (t && state.lastTelemetry.get(station.id) !== t.sim_time_s) {
    state.lastTelemetry.set(station.id, t.sim_time_s);
    let series = state.spark.get(station.id);
    if (!series) {
      series = {};
      state.spark.set(station.id, series);
    }
    for (const [key] of SENSORS) {
      if (!isNum(t[key])) continue;
      const points = series[key] || (series[key] = []);
      points.push([t.sim_time_s, t[key]]);
      if (points.length > SPARK_POINTS) points.splice(0, points.length - SPARK_POINTS);
    }
  }
}

export function layoutStations() {
  const ids = [...state.stations.values()]
    .sort((a, b) => (a.position ?? 1e9) - (b.position ?? 1e9) || a.id.localeCompare(b.id))
    .map((s) => s.id);
  if (ids.join("\n") === state.order.join("\n")) return;
  state.order = ids;
  const container = byTestId("stations");
  container.replaceChildren();
  state.cards.clear();
  ids.forEach((id, index) => {
    if (index > 0) container.append(el("div", { class: "flow", "aria-hidden": "true", text: "→" }));
    const card = buildCard(id);
    state.cards.set(id, card);
    container.append(card.root);
  });
  for (const select of document.querySelectorAll("[data-station-select]")) {
    const keep = select.value;
    select.replaceChildren(el("option", { value: "", text: "none" }));
    for (const id of ids) select.append(el("option", { value: id, text: state.stations.get(id).name || id }));
    select.value = keep;
  }
}

function buildCard(id) {
  const refs = {};
  const ref = (name, node) => {
    refs[name] = node;
    return node;
  };
  const root = el("a", { class: "station", href: stationHref(id), "data-testid": `station-${id}`, "data-station": id }, [
    el("div", { class: "station-head" }, [
      ref("name", el("span", { class: "station-name" })),
      ref("badge", el("span", { class: "badge", text: "bottleneck", hidden: "" })),
    ]),
    ref("state", el("div", { class: "state-pill", "data-testid": `state-${id}` })),
    el("div", { class: "buffer", title: "Input buffer: level / capacity" }, [
      el("span", { class: "label", text: "in-buffer" }),
      el("div", { class: "bar" }, [ref("bufferFill", el("div", { class: "fill" }))]),
      ref("bufferText", el("span", { class: "num" })),
    ]),
    el("dl", { class: "mini" }, [
      el("dt", { text: "OEE" }), ref("oee", el("dd", { "data-testid": `oee-${id}` })),
      el("dt", { text: "Output" }), ref("throughput", el("dd")),
      el("dt", { text: "Good" }), ref("good", el("dd", { "data-testid": `good-${id}` })),
      el("dt", { text: "Defect risk" }), ref("risk", el("dd")),
    ]),
    ref("sparks", el("div", { class: "sparks" })),
  ]);
  for (const [key, label, unit] of SENSORS) {
    const row = el("div", { class: "spark-row", hidden: "" }, [
      el("span", { class: "label", text: label }),
      svg("svg", { class: "spark", viewBox: "0 0 100 24", preserveAspectRatio: "none", "aria-hidden": "true" }),
      el("span", { class: "num", "data-testid": `sensor-${id}-${key}` }),
    ]);
    row.dataset.sensor = key;
    row.dataset.unit = unit;
    refs.sparks.append(row);
  }
  return { root, refs };
}

function stationThroughput(station) {
  // Good parts per hour of the station's planned busy time (per machine: the clock).
  const k = station.kpis || {};
  const hours = (k.planned_busy_time_s || 0) / Math.max(1, k.machines || 1) / 3600;
  return hours > 0 ? station.good / hours : null;
}

export function renderAllStations() {
  for (const id of state.order) renderStation(id);
}

export function renderStation(id) {
  const station = state.stations.get(id);
  const card = state.cards.get(id);
  if (!station || !card) return;
  const { refs, root } = card;
  const stationState = station.state || "unknown";
  setText(refs.name, station.name || id);
  root.dataset.state = stationState;
  refs.state.dataset.state = stationState;
  setText(refs.state, stateLabel(station));
  refs.state.title = stateTitle(station);
  refs.badge.hidden = bottleneck() !== id;
  root.classList.toggle("selected", state.selected === id);
  const buffer = station.input_buffer;
  if (buffer && isNum(buffer.capacity)) {
    const level = isNum(buffer.level) ? buffer.level : 0;
    refs.bufferFill.style.width = `${Math.min(100, (100 * level) / buffer.capacity)}%`;
    setText(refs.bufferText, `${isNum(buffer.level) ? buffer.level : "–"} / ${buffer.capacity}`);
  } else {
    refs.bufferFill.style.width = "0%";
    setText(refs.bufferText, buffer && isNum(buffer.level) ? `${buffer.level} / ∞` : "source");
  }
  setRatio(refs.oee, station.kpis && station.kpis.oee);
  setText(refs.throughput, fmtNum(stationThroughput(station), 1, "/planned h"));
  setText(refs.good, fmtInt(station.good));
  setText(refs.risk, stationRiskText(station));
  const series = state.spark.get(id) || {};
  const telemetry = station.telemetry || {};
  for (const row of refs.sparks.children) {
    const key = row.dataset.sensor;
    const points = series[key];
    row.hidden = !points || points.length === 0;
    if (row.hidden) continue;
    drawSpark(row.querySelector("svg"), points);
    const digits = key === "spindle_rpm" ? 0 : key === "vibration_mm_s" ? 2 : 1;
    setText(row.querySelector(".num"), fmtNum(telemetry[key], digits, row.dataset.unit));
  }
  if (state.selected === id) renderDetail();
}

function drawSpark(node, points) {
  const values = points.map((p) => p[1]);
  let low = Math.min(...values);
  let high = Math.max(...values);
  if (high - low < 1e-9) {
    low -= 1;
    high += 1;
  }
  const span = Math.max(1, points.length - 1);
  const path = points
    .map((p, i) => `${i === 0 ? "M" : "L"}${((100 * i) / span).toFixed(2)},${(22 - (20 * (p[1] - low)) / (high - low)).toFixed(2)}`)
    .join(" ");
  let line = node.firstChild;
  if (!line) {
    line = svg("path", { class: "spark-line", "vector-effect": "non-scaling-stroke" });
    node.append(line);
  }
  line.setAttribute("d", path);
}
