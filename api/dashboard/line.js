// The line: its header (name, status, pace, clock), its KPIs, the texts its
// stations share (their state, defect risk, the bottleneck),
// and the line commands (pause, resume, speed).

import { state } from "./state.js";
import { byTestId, setText } from "./dom.js";
import { fmtClock, fmtDuration, fmtInt, fmtNum, fmtPct, isNum, setRatio } from "./format.js";
import { api, showAck } from "./api.js";
import { renderConnection } from "./stream.js";

// The speed in force beside the one asked (a simulated line paces itself on its
// pipeline), and how far the figures trail the line: in line seconds and messages.
function renderPace(line) {
  const pace = byTestId("line-pace");
  const parts = [];
  if (isNum(line.speed_factor)) {
    const asked = isNum(line.speed_asked) ? line.speed_asked : line.speed_factor;
    parts.push(
      line.speed_factor < asked
        ? `speed ${fmtNum(line.speed_factor, 1)}× of ${fmtNum(asked, 0)}× asked (paced: the pipeline carries no more)`
        : `speed ${fmtNum(line.speed_factor, 1)}×`,
    );
  } else {
    parts.push("speed: real time");
  }
  if (isNum(line.lag_s)) {
    const messages = isNum(line.lag_messages) ? ` · ${fmtInt(line.lag_messages)} messages` : "";
    parts.push(`figures as of ${fmtNum(line.lag_s, 0)} s of line time ago${messages}`);
  } else {
    parts.push("lag not known (the line sends no heartbeat)");
  }
  pace.dataset.state = line.speed_factor < (line.speed_asked || 0) ? "paced" : "ok";
  setText(pace, parts.join(" · "));
}

export function renderLine() {
  const line = state.line;
  if (!line) return;
  const k = line.kpis || {};
  setText(byTestId("line-name"), line.name || line.line || "factory-twin");
  document.title = `${line.name || "line"} · factory-twin`;
  const status = byTestId("line-status");
  const paused = line.paused === true && line.status === "online";
  status.dataset.state = paused ? "paused" : line.status;
  setText(status, `line: ${line.status}${paused ? ", paused" : ""}`);
  renderPace(line);
  renderConnection();
  renderClock(line);
  setText(byTestId("kpi-good"), fmtInt(k.good));
  setText(byTestId("kpi-produced"), fmtInt(k.produced));
  setText(byTestId("kpi-scrap"), fmtInt(k.scrap));
  setRatio(byTestId("kpi-oee"), k.oee);
  setRatio(byTestId("kpi-availability"), k.availability);
  setRatio(byTestId("kpi-effectiveness"), k.effectiveness);
  setRatio(byTestId("kpi-quality"), k.quality_ratio);
  setText(
    byTestId("kpi-throughput"),
    isNum(k.throughput_per_h)
      ? `${fmtNum(k.throughput_per_h, 1, "/calendar h")}${isNum(k.throughput_per_planned_h) ? `\n${fmtNum(k.throughput_per_planned_h, 1, "/planned h")}` : ""}`
      : "–",
  );
  setText(byTestId("kpi-wip"), `${fmtInt(k.work_in_process)} parts`);
  setText(byTestId("kpi-mean-wip"), isNum(k.mean_wip) ? `${fmtNum(k.mean_wip, 1)} parts` : "–");
  setText(byTestId("kpi-cycle"), fmtDuration(k.cycle_time_s));
  setText(byTestId("kpi-bottleneck"), bottleneckName() || "–");
  const models = line.models || {};
  const risk = byTestId("kpi-defect-risk");
  setText(risk, lineRiskText(models));
  risk.dataset.status = models.status || "off";
  risk.title = models.reason || "";
}

// The line's defect risk, or what stands in for it: the first models being
// trained, scoring off (the tooltip says why and what to do), no parts yet.
function lineRiskText(models) {
  if (models.status === "training") return "training models…";
  if (models.status !== "on") return "scoring off";
  if (!models.defect_model) return "no defect model";
  return isNum(models.defect_risk) ? fmtPct(models.defect_risk) : "waiting for parts";
}

export function stationRiskText(station) {
  if (isNum(station.defect_risk)) return fmtPct(station.defect_risk);
  const status = state.line && state.line.models && state.line.models.status;
  if (status === "training") return "training…";
  return status === "on" ? "no parts scored yet" : "off";
}

// The line's time as the plant reads it: time of day and shift from the calendar
// the line announced; without one, the elapsed time, saying so.
function renderClock(line) {
  const clock = line.clock || {};
  setText(byTestId("sim-time"), fmtClock(line.sim_time_s));
  const time = byTestId("clock-time");
  const shift = byTestId("clock-shift");
  if (!clock.calendar || !clock.time_of_day) {
    setText(time, fmtClock(line.sim_time_s));
    setText(shift, isNum(line.sim_time_s) ? "since start (no calendar)" : "");
    shift.dataset.planned = "false";
    time.title = clock.note || "";
    return;
  }
  setText(time, clock.time_of_day);
  time.title = `day ${clock.day} · ${clock.note}`;
  if (clock.planned_stop) {
    setText(shift, `${clock.planned_stop} until ${clock.planned_stop_until}`);
    shift.dataset.planned = "true";
  } else {
    setText(shift, clock.shift === "around the clock" ? clock.shift : `shift ${clock.shift || "–"}`);
    shift.dataset.planned = "false";
  }
}

// A station in planned downtime shows the break or shift change it is, not a fault.
export function stateLabel(station) {
  if (station.state === "planned_downtime") return station.planned_stop || "planned stop";
  return (station.state || "unknown").replace("_", " ");
}

export function stateTitle(station) {
  if (station.state === "planned_downtime") return `planned stop (not a fault): ${station.planned_stop || station.state_reason || ""}`;
  return station.state_reason || "";
}

// The line KPIs name the bottleneck (active-period method, else the capacity
// constraint). Without it: the station with the highest utilisation.
export function bottleneck() {
  const named = state.line && state.line.kpis && state.line.kpis.bottleneck;
  if (named) return named;
  let best = null;
  for (const station of state.stations.values()) {
    const u = station.kpis && station.kpis.utilisation;
    if (isNum(u) && (best === null || u > best[1])) best = [station.id, u];
  }
  return best && best[0];
}

function bottleneckName() {
  const id = bottleneck();
  if (!id) return null;
  const station = state.stations.get(id);
  return station ? station.name : id;
}

export async function lineCommand(body, label) {
  const node = byTestId("line-ack");
  node.classList.remove("ok", "bad");
  setText(node, `${label}: waiting for the line…`);
  showAck(node, await api("POST", "/line/commands", body), label);
}
