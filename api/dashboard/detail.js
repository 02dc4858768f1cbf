// A station's detail (#station=<id>): its state, process, counters, sensors and
// where its time went; the setpoint form and the station commands.

import { state } from "./state.js";
import { byTestId, el, setText } from "./dom.js";
import { fmtDuration, fmtInt, fmtNum, fmtPct, isNum, setRatio } from "./format.js";
import { api, showAck } from "./api.js";
import { stateLabel, stateTitle, stationRiskText } from "./line.js";
import { renderTrends } from "./trends.js";

function fact(list, label, value, testid) {
  const dd = el("dd", { text: value, "data-testid": testid });
  list.append(el("dt", { text: label }), dd);
  return dd;
}

export function renderDetail() {
  const id = state.selected;
  const station = state.stations.get(id);
  if (!station) {
    setText(byTestId("detail-name"), `${id} (not seen yet)`);
    return;
  }
  setText(byTestId("detail-name"), `${station.name} · ${station.id}`);
  const form = byTestId("setpoint-form");
  if (state.fillPending && form.elements.value.value === "") fillSetpointDefault();
  const pill = byTestId("detail-state");
  pill.dataset.state = station.state || "unknown";
  setText(pill, stateLabel(station));
  pill.title = stateTitle(station);
  const since = isNum(station.state_since_s) && state.line && isNum(state.line.sim_time_s)
    ? ` for ${fmtDuration(state.line.sim_time_s - station.state_since_s)}` : "";
  setText(byTestId("detail-reason"), `${station.state_reason || ""}${since}`);

  const processList = byTestId("detail-process");
  processList.replaceChildren();
  const process = station.process || {};
  fact(processList, "speed", isNum(process.speed) ? `${process.speed.toFixed(2)} ×` : "–", "process-speed");
  if ("temperature_c" in process) fact(processList, "temperature", fmtNum(process.temperature_c, 1, "°C"), "process-temperature_c");
  if ("wear" in process) fact(processList, "tool wear", fmtPct(process.wear), "process-wear");
  fact(processList, "defect risk", stationRiskText(station), "detail-defect-risk");

  const counters = byTestId("detail-counters");
  counters.replaceChildren();
  fact(counters, "started", fmtInt(station.started));
  fact(counters, "good", fmtInt(station.good), "detail-good");
  fact(counters, "scrap", fmtInt(station.scrap));
  fact(counters, "rework", fmtInt(station.rework));
  setRatio(fact(counters, "OEE", "", "detail-oee"), station.kpis.oee);
  setRatio(fact(counters, "effectiveness", "", "detail-effectiveness"), station.kpis.effectiveness);
  setRatio(fact(counters, "utilisation", ""), station.kpis.utilisation);
  fact(counters, "machines", String(station.kpis.machines ?? 1));

  const sensors = byTestId("detail-sensors");
  const card = state.cards.get(id);
  sensors.replaceChildren();
  if (card) {
    for (const row of card.refs.sparks.children) {
      if (row.hidden) continue;
      const copy = row.cloneNode(true);
      const value = copy.querySelector(".num");
      value.setAttribute("data-testid", `detail-sensor-${row.dataset.sensor}`);
      sensors.append(copy);
    }
  }
  if (!sensors.children.length) sensors.append(el("p", { class: "muted", text: "no telemetry yet" }));

  byTestId("detail-time").replaceChildren(timeBar(station));
  renderTrends();
}

function timeBar(station) {
  const k = station.kpis || {};
  const parts = [
    ["running", k.actual_production_time_s],
    ["setup", k.setup_time_s],
    ["maintenance", k.maintenance_time_s],
    ["down", k.down_time_s],
    ["starved", k.starved_time_s],
    ["blocked", k.blocked_time_s],
    ["stopped", k.stopped_time_s],
  ];
  const total = parts.reduce((sum, [, v]) => sum + (isNum(v) ? v : 0), 0);
  const bar = el("div", { class: "timebar" });
  const legend = el("dl", { class: "facts" });
  for (const [name, seconds] of parts) {
    if (!isNum(seconds) || seconds <= 0 || total <= 0) continue;
    bar.append(el("span", { "data-state": name, style: `width:${((100 * seconds) / total).toFixed(2)}%`, title: `${name}: ${fmtDuration(seconds)}` }));
    legend.append(el("dt", { text: name }), el("dd", { text: `${fmtDuration(seconds)} (${fmtPct(seconds / total)})` }));
  }
  return el("div", {}, [bar, legend]);
}

export function fillSetpointDefault() {
  const station = state.stations.get(state.selected);
  const form = byTestId("setpoint-form");
  const process = (station && station.process) || {};
  const name = form.elements.setpoint.value;
  if (isNum(process[name])) {
    form.elements.value.value = String(process[name]);
    state.fillPending = false;
  }
}

export async function stationCommand(body, label) {
  const node = byTestId("setpoint-ack");
  if (!state.selected) return;
  node.classList.remove("ok", "bad");
  delete node.dataset.accepted;
  setText(node, `${label}: waiting for the line…`);
  const station = encodeURIComponent(state.selected);
  // With a site, every line (the first included) takes commands at /lines/{id}/...
  const path = state.site
    ? `/lines/${encodeURIComponent(state.lineId)}/stations/${station}/commands`
    : `/stations/${station}/commands`;
  showAck(node, await api("POST", path, body), label);
}
