// factory-twin live dashboard: native ES modules, no build step, no dependencies,
// no external URL. This module routes the page and wires its forms; each view is
// its own module, and api.js, stream.js, format.js and dom.js say their part.
//
// State comes from GET /twin, then from the SSE stream GET /stream. Alarms and the
// economics (GET /economics), the learnt line and its forecasts (GET /model,
// GET /forecasts) are polled. Commands carry the token the user typed.
//
// A site (several lines, GET /site) adds a strip of its lines at the top. The page
// shows one line at a time (#line=<id>, with &station=<id> for a station): the
// first line is the one /twin and /stream serve, so it stays live over SSE; any
// other line is polled from GET /lines/{id}. Both give a LineView, and both go
// through applyTwin: one rendering, whatever the source. Alarms, economics, the
// optimizer and what-if are the shown line's, from its own paths
// (/lines/{id}/alarms, ...; linePath).

import { state } from "./state.js";
import { byTestId, el, setText } from "./dom.js";
import { TOKEN_KEY, api, firstLineId, hashParams, lineHref, linePath, onFirstLine, showTokenState, tokenFromFragment } from "./api.js";
import { connect, setConnection } from "./stream.js";
import { lineName, pollSite, renderSite } from "./site.js";
import { lineCommand, renderLine } from "./line.js";
import { layoutStations, putStation, renderAllStations, renderStation } from "./stations.js";
import { fillSetpointDefault, renderDetail, stationCommand } from "./detail.js";
import { pollAlarms } from "./alarms.js";
import { pollEconomics } from "./economics.js";
import { pollForecasts, pollModel } from "./learning.js";
import { chosenVars, loadOptimizerSpace, loadRecommendation, pollScenarios, runJob, showScenario } from "./jobs.js";
import { followHistory } from "./backfill.js";

const STATES = [
  "running", "setup", "maintenance", "down", "starved", "blocked", "stopped", "planned_downtime",
];
const LINE_POLL_MS = 1500; // a line other than the first: GET /lines/{id}
const SITE_POLL_MS = 3000; // the site strip: GET /site

function applyTwin(twin) {
  const { stations, ...line } = twin;
  state.line = line;
  const seen = new Set();
  for (const station of stations) {
    seen.add(station.id);
    putStation(station);
  }
  for (const id of [...state.stations.keys()]) {
    if (!seen.has(id)) state.stations.delete(id);
  }
  layoutStations();
  renderLine();
  renderAllStations();
}

// What each event of the stream (stream.js) does: the first line's state.
const LIVE_EVENTS = {
  reset: (data) => applyTwin(data.twin),
  line: (line) => {
    state.line = line;
    renderLine();
    renderAllStations(); // the bottleneck mark and throughputs depend on the line
  },
  station: (station) => {
    const known = state.stations.has(station.id);
    putStation(station);
    if (!known) layoutStations();
    renderStation(station.id);
  },
};

// Show one line: the first over SSE, any other polled. Everything of the line
// shown before is dropped, and answers still on their way for it are ignored.
function showLine(lineId) {
  if (state.shown && state.lineId === lineId) return;
  state.shown = true;
  state.lineId = lineId;
  state.generation += 1;
  clearTimeout(state.pollTimer);
  state.pollTimer = null;
  if (state.events) {
    state.events.close();
    state.events = null;
  }
  resetLine();
  // The jobs' panels are the line's: what another line ran is not shown here.
  state.scenarioShown = null;
  byTestId("scenario-result").replaceChildren();
  byTestId("site-clock-note").hidden = !state.site;
  renderSite();
  const generation = state.generation;
  if (onFirstLine()) {
    followFirstLine(generation);
  } else {
    setConnection("connecting", "loading…");
    pollLine(generation);
  }
  pollAlarms();
  pollEconomics();
  pollModel();
  pollForecasts();
  loadRecommendation();
  loadOptimizerSpace();
  pollScenarios();
}

function resetLine() {
  state.line = null;
  state.stations.clear();
  state.order = [];
  state.cards.clear();
  state.spark.clear();
  state.lastTelemetry.clear();
  state.economics = null;
  byTestId("stations").replaceChildren();
  for (const node of document.querySelectorAll(".kpis .value")) setText(node, "–");
  setText(byTestId("sim-time"), "–");
  setText(byTestId("clock-time"), "–");
  setText(byTestId("clock-shift"), "");
  if (state.site) setText(byTestId("line-name"), lineName(state.lineId));
}

async function followFirstLine(generation) {
  const twin = await api("GET", "/twin");
  if (generation !== state.generation) return;
  if (twin.ok) applyTwin(twin.data);
  connect(LIVE_EVENTS);
}

async function pollLine(generation) {
  if (generation !== state.generation) return;
  const lineId = state.lineId;
  const result = await api("GET", `/lines/${encodeURIComponent(lineId)}`);
  if (generation !== state.generation) return;
  if (result.ok) {
    setConnection("polling", `polled every ${LINE_POLL_MS / 1000} s`);
    applyTwin(result.data);
  } else {
    setConnection("closed", `line ${lineId}: ${result.error}`);
  }
  state.pollTimer = setTimeout(() => pollLine(generation), LINE_POLL_MS);
}

// -- routing: #line=<id>&station=<id> ------------------------------------------------
function route() {
  const params = hashParams();
  if (state.site) {
    const wanted = params.get("line");
    const known = state.site.lines.some((line) => line.id === wanted);
    showLine(known ? wanted : firstLineId());
  } else {
    showLine(null);
  }
  const id = params.get("station");
  const previous = state.selected;
  state.selected = id || null;
  const panel = byTestId("station-detail");
  panel.hidden = !state.selected;
  if (previous && state.cards.has(previous)) state.cards.get(previous).root.classList.remove("selected");
  if (state.selected) {
    const card = state.cards.get(state.selected);
    if (card) card.root.classList.add("selected");
    renderDetail();
    if (previous !== state.selected) {
      setText(byTestId("setpoint-ack"), "");
      byTestId("setpoint-form").elements.value.value = "";
      state.fillPending = true;
      fillSetpointDefault();
      panel.scrollIntoView({ block: "nearest" });
    }
  }
}

// -- wiring -------------------------------------------------------------------------
function wire() {
  const legend = byTestId("legend");
  for (const name of STATES) legend.append(el("span", { class: "state-pill", "data-state": name, text: name.replace("_", " ") }));

  const tokenForm = byTestId("token-form");
  tokenForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = tokenForm.elements.token.value.trim();
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
    tokenForm.elements.token.value = "";
    showTokenState();
  });

  for (const button of document.querySelectorAll("[data-action]")) {
    button.addEventListener("click", () => lineCommand({ action: button.dataset.action }, button.dataset.action));
  }
  const speedForm = byTestId("speed-form");
  speedForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const factor = Number(speedForm.elements.factor.value);
    lineCommand({ action: "set_speed", factor }, `speed ${factor}×`);
  });

  const setpointForm = byTestId("setpoint-form");
  setpointForm.elements.setpoint.addEventListener("change", fillSetpointDefault);
  setpointForm.elements.value.addEventListener("input", () => {
    state.fillPending = false;
  });
  setpointForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const setpoint = setpointForm.elements.setpoint.value;
    const value = Number(setpointForm.elements.value.value);
    stationCommand({ action: "set_setpoint", setpoint, value }, `${setpoint} → ${value}`);
  });
  for (const button of document.querySelectorAll("[data-station-action]")) {
    button.addEventListener("click", () => stationCommand({ action: button.dataset.stationAction }, button.dataset.stationAction));
  }
  byTestId("detail-close").addEventListener("click", (event) => {
    event.preventDefault();
    const keep = state.site && state.lineId ? lineHref(state.lineId) : "";
    history.replaceState(null, "", location.pathname + location.search + keep);
    route();
  });

  const optimizeForm = byTestId("optimize-form");
  optimizeForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { objective: optimizeForm.elements.objective.value };
    const vars = chosenVars(optimizeForm);
    if (vars) body.vars = vars;
    const done = await runJob(linePath("/optimize"), body, byTestId("optimize-job"));
    if (done) loadRecommendation();
  });
  byTestId("optimize-apply").addEventListener("click", async () => {
    const holder = byTestId("optimize-job");
    const result = await api("POST", linePath("/optimize/apply"));
    if (!result.ok) {
      holder.replaceChildren(el("span", { class: "bad", text: `apply: ${result.error}` }));
      return;
    }
    const acks = result.data.acks || [];
    const accepted = acks.filter((entry) => entry.ack && entry.ack.accepted).length;
    holder.replaceChildren(el("span", { class: accepted === acks.length ? "ok" : "bad", text: `applied: ${accepted} of ${acks.length} setpoints accepted` }));
  });

  const scenarioForm = byTestId("scenario-form");
  scenarioForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const f = scenarioForm.elements;
    const changes = { setpoints: {}, stations_down: {} };
    if (f.down_station.value) changes.stations_down[f.down_station.value] = Number(f.down_hours.value);
    if (f.sp_station.value && f.sp_value.value !== "") changes.setpoints[f.sp_station.value] = { [f.sp_name.value]: Number(f.sp_value.value) };
    const body = {
      horizon_h: Number(f.horizon_h.value),
      replications: Number(f.replications.value),
      seed: f.seed.value === "" ? null : Number(f.seed.value),
      changes,
    };
    const started = runJob(linePath("/scenarios"), body, byTestId("scenario-job"));
    pollScenarios();
    const outcome = await started;
    pollScenarios();
    if (outcome) showScenario(outcome.id);
    else byTestId("scenario-result").replaceChildren();
  });

  window.addEventListener("hashchange", () => {
    tokenFromFragment();
    showTokenState();
    route();
  });
}

// A site shows as several lines in GET /lines (always 200). Only then ask
// GET /site: its 404 on a single-line API would be a failed load in the console.
async function loadSite() {
  const lines = await api("GET", "/lines");
  if (!lines.ok || !Array.isArray(lines.data) || lines.data.length < 2) return false;
  await pollSite();
  return state.site !== null;
}

async function start() {
  tokenFromFragment();
  showTokenState();
  wire();
  if (await loadSite()) setInterval(pollSite, SITE_POLL_MS);
  route(); // shows the line: its alarms, economics, recommendation and what-ifs
  followHistory();
  setInterval(pollAlarms, 5000);
  setInterval(pollEconomics, 5000); // each call also feeds the API's shift snapshots
  setInterval(pollScenarios, 5000);
  setInterval(pollModel, 30000); // every GET /model refits the learnt line
  setInterval(pollForecasts, 10000);
}

document.addEventListener("DOMContentLoaded", start);
