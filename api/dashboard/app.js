// factory-twin live dashboard: vanilla JS, no dependencies, no external URL.
//
// State comes from GET /twin, then from the SSE stream GET /stream (reset, line
// and station events; EventSource reconnects by itself with Last-Event-ID).
// Alarms and the economics (GET /economics) are polled. Commands carry the
// token the user typed, kept in sessionStorage only. Every value from the server goes in with textContent.
//
// A site (several lines, GET /site) adds a strip of its lines at the top. The page
// shows one line at a time (#line=<id>, with &station=<id> for a station): the
// first line is the one /twin and /stream serve, so it stays live over SSE; any
// other line is polled from GET /lines/{id}. Both give a LineView, and both go
// through applyTwin: one rendering, whatever the source. Alarms, economics, the
// optimizer and what-if are the shown line's, from its own paths
// (/lines/{id}/alarms, ...; linePath).
"use strict";

(() => {
  const TOKEN_KEY = "factory-twin-token";
  const SPARK_POINTS = 90;
  const SENSORS = [
    ["temperature_c", "Temperature", "°C"],
    ["vibration_mm_s", "Vibration", "mm/s"],
    ["power_kw", "Power", "kW"],
    ["spindle_rpm", "Spindle", "rpm"],
    ["pressure_bar", "Pressure", "bar"],
  ];
  const STATES = [
    "running", "setup", "maintenance", "down", "starved", "blocked", "stopped", "planned_downtime",
  ];
  const LINE_POLL_MS = 1500; // a line other than the first: GET /lines/{id}
  const SITE_POLL_MS = 3000; // the site strip: GET /site
  const HISTORY_POLL_MS = 2000; // while the backfill writes: GET /healthz
  const LOSS_CATEGORIES = [
    ["unplanned", "Breakdowns"],
    ["planned", "Setup, maintenance, stops"],
    ["external", "Starved / blocked"],
    ["speed", "Speed & microstops"],
    ["quality", "Quality (scrap, rework)"],
  ];

  const state = {
    line: null, // LineSummary
    stations: new Map(), // id -> StationView
    order: [], // station ids in line order
    cards: new Map(), // id -> {root, refs}
    spark: new Map(), // id -> {sensor: [[t, v], ...]}
    lastTelemetry: new Map(), // id -> sim_time_s of the last sample taken
    selected: null,
    economics: null, // EconomicsView from GET /economics
    events: null,
    site: null, // SiteView from GET /site; null when the API serves one line
    lineId: null, // the line shown; null for the one line of a single-line API
    shown: false, // whether a line has been chosen yet
    generation: 0, // bumped on every change of line: answers for an older one are dropped
    pollTimer: null,
    siteCards: new Map(), // line id -> {root, refs}
    fillPending: false, // the setpoint form waits for the station's current value
    connection: { kind: "connecting", text: "connecting…" }, // the stream's own state
    scenarioShown: null, // the what-if whose forecast is shown
  };

  // -- small helpers ------------------------------------------------------------------
  const $ = (selector, root = document) => root.querySelector(selector);
  const byTestId = (id, root = document) => root.querySelector(`[data-testid="${id}"]`);

  function el(tag, attrs = {}, children = []) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined) continue;
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  function svg(tag, attrs = {}) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    return node;
  }

  function setText(node, text) {
    if (node && node.textContent !== text) node.textContent = text;
  }

  const isNum = (v) => typeof v === "number" && Number.isFinite(v);
  const fmtInt = (v) => (isNum(v) ? Math.round(v).toLocaleString("en-US") : "–");
  const fmtPct = (v, digits = 1) => (isNum(v) ? `${(v * 100).toFixed(digits)} %` : "–");
  const fmtNum = (v, digits = 2, unit = "") =>
    isNum(v) ? `${v.toFixed(digits)}${unit ? ` ${unit}` : ""}` : "–";

  // A ratio above 1 is shown as measured, never capped, and marked with the reason.
  const ABOVE_ONE =
    "Above 100 %: the parts made took less running time than their planned runtime per unit " +
    "(PRU, the rated fastest cycle) allows. That happens by chance over few parts, since " +
    "processing times vary around their mean, or when the line publishes a PRU slower than " +
    "it really runs. Shown as measured (docs/kpis.md).";

  function setRatio(node, v, digits = 1) {
    if (!node) return;
    const above = isNum(v) && v > 1;
    setText(node, above ? `${fmtPct(v, digits)} ▲` : fmtPct(v, digits));
    node.classList.toggle("above-one", above);
    if (above) node.title = ABOVE_ONE;
    else node.removeAttribute("title");
  }

  function fmtDuration(seconds) {
    if (!isNum(seconds)) return "–";
    const s = Math.max(0, seconds);
    if (s < 90) return `${s.toFixed(0)} s`;
    if (s < 5400) return `${(s / 60).toFixed(1)} min`;
    return `${(s / 3600).toFixed(2)} h`;
  }

  function fmtClock(seconds) {
    if (!isNum(seconds)) return "–";
    const total = Math.floor(seconds);
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = total % 60;
    return `${h}:${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}`;
  }

  function fmtMoney(v, currency) {
    return isNum(v) ? `${v.toFixed(2)} ${currency || ""}`.trim() : "–";
  }

  // -- token --------------------------------------------------------------------------
  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  function showTokenState() {
    setText(byTestId("token-state"), token() ? "token set: commands enabled" : "no token: read-only");
  }

  function hashParams() {
    return new URLSearchParams(location.hash.replace(/^#/, ""));
  }

  // A token in the fragment (#token=...) never reached the server; take it and
  // remove it from the address bar and the history.
  function tokenFromFragment() {
    const params = hashParams();
    const fromUrl = params.get("token");
    if (!fromUrl) return;
    sessionStorage.setItem(TOKEN_KEY, fromUrl);
    params.delete("token");
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
  }

  // -- HTTP ---------------------------------------------------------------------------
  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET" && token()) headers.Authorization = `Bearer ${token()}`;
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
      });
    } catch (error) {
      return { ok: false, status: 0, data: null, error: `network error: ${error.message}` };
    }
    let data = null;
    const text = await response.text();
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = text;
    }
    return { ok: response.ok, status: response.status, data, error: response.ok ? null : describe(response.status, data) };
  }

  function describe(status, data) {
    if (status === 401) return "401: enter the API token first";
    if (status === 403) return "403: the token was refused";
    if (status === 404 || status === 405) return "not available on this server";
    let detail = data && typeof data === "object" ? data.detail : data;
    if (Array.isArray(detail)) detail = detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
    return `${status}: ${detail || "request failed"}`;
  }

  function showAck(node, result, what) {
    node.classList.remove("ok", "bad");
    if (!result.ok) {
      node.classList.add("bad");
      node.textContent = `${what}: ${result.error}`;
      return;
    }
    const ack = result.data || {};
    node.classList.add(ack.accepted ? "ok" : "bad");
    const verdict = ack.accepted ? "accepted" : "rejected";
    const at = isNum(ack.sim_time_s) ? ` at sim ${fmtClock(ack.sim_time_s)}` : "";
    node.textContent = `${what}: ${verdict}${at}${ack.reason ? ` (${ack.reason})` : ""}`;
    node.dataset.accepted = String(Boolean(ack.accepted));
  }

  // -- live data ----------------------------------------------------------------------
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

  function putStation(station) {
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

  function connect() {
    if (state.events) state.events.close();
    setConnection("connecting", "connecting…");
    const source = new EventSource("/stream");
    state.events = source;
    // Once another line is shown, this source is closed; drop what was on its way.
    const current = () => state.events === source;
    source.onopen = () => current() && setConnection("live", "live");
    source.onerror = () => {
      if (!current()) return;
      if (source.readyState === EventSource.CLOSED) {
        setConnection("closed", "disconnected: retrying in 5 s");
        setTimeout(() => current() && connect(), 5000);
      } else {
        setConnection("reconnecting", "reconnecting…");
      }
    };
    source.addEventListener("reset", (event) => {
      if (current()) applyTwin(JSON.parse(event.data).twin);
    });
    source.addEventListener("line", (event) => {
      if (!current()) return;
      state.line = JSON.parse(event.data);
      renderLine();
      renderAllStations(); // the bottleneck mark and throughputs depend on the line
    });
    source.addEventListener("station", (event) => {
      if (!current()) return;
      const station = JSON.parse(event.data);
      const known = state.stations.has(station.id);
      putStation(station);
      if (!known) layoutStations();
      renderStation(station.id);
    });
  }

  // The stream's own state ("live", "reconnecting"...). A paused line is never shown
  // as live: the pill says "paused" while the line's retained status says so.
  function setConnection(kind, text) {
    state.connection = { kind, text };
    renderConnection();
  }

  function renderConnection() {
    const pill = byTestId("conn-status");
    const { kind, text } = state.connection;
    const paused = Boolean(state.line && state.line.paused) && (kind === "live" || kind === "polling");
    pill.dataset.state = paused ? "paused" : kind;
    setText(pill, paused ? "paused" : text);
    pill.title = paused ? "The line is paused on command: nothing moves until it resumes." : "";
  }

  // -- site and lines -----------------------------------------------------------------
  const firstLineId = () => (state.site && state.site.lines.length ? state.site.lines[0].id : null);
  // The first line is the one the single-line endpoints (/twin, /stream, /alarms, ...) serve.
  const onFirstLine = () => !state.site || state.lineId === firstLineId();
  // A resource of the shown line: /lines/{id}/... on a site, the single-line path else.
  const linePath = (path) => (state.site && state.lineId ? `/lines/${encodeURIComponent(state.lineId)}${path}` : path);
  const lineHref = (lineId) => `#line=${encodeURIComponent(lineId)}`;

  function stationHref(id, lineId = state.lineId) {
    const station = `station=${encodeURIComponent(id)}`;
    return state.site && lineId ? `${lineHref(lineId)}&${station}` : `#${station}`;
  }

  function lineName(lineId) {
    const line = state.site && state.site.lines.find((l) => l.id === lineId);
    return line ? line.name || line.id : lineId || "";
  }

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
    loadRecommendation();
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
    connect();
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

  async function pollSite() {
    const result = await api("GET", "/site");
    if (!result.ok) {
      setText(byTestId("site-crews"), `site: ${result.error}`);
      return;
    }
    state.site = result.data;
    renderSite();
  }

  function buildLineCard(lineId) {
    const refs = {};
    const ref = (name, node) => {
      refs[name] = node;
      return node;
    };
    const figure = (label, name) => [
      el("dt", { text: label }),
      ref(name, el("dd", { "data-testid": `site-line-${lineId}-${name}` })),
    ];
    const root = el("a", { class: "site-line", href: lineHref(lineId), "data-testid": `site-line-${lineId}`, "data-line": lineId }, [
      el("div", { class: "site-line-head" }, [
        ref("name", el("span", { class: "site-line-name" })),
        ref("status", el("span", { class: "pill", "data-testid": `site-line-${lineId}-status` })),
      ]),
      el("dl", { class: "mini" }, [
        ...figure("OEE", "oee"),
        ...figure("Throughput", "throughput"),
        ...figure("Good parts", "good"),
      ]),
    ]);
    return { root, refs };
  }

  function renderSite() {
    const site = state.site;
    const strip = byTestId("site-strip");
    strip.hidden = !site;
    if (!site) return;
    setText(byTestId("site-name"), site.name || site.id);
    const crews = site.shared_repair_crews.map((crew) =>
      `${crew.id} (${crew.size} technician${crew.size === 1 ? "" : "s"}: ${crew.lines.join(", ")})`);
    setText(byTestId("site-crews"), crews.length ? `shared repair crews: ${crews.join("; ")}` : "");
    const holder = byTestId("site-lines");
    const ids = site.lines.map((line) => line.id);
    if (ids.join("\n") !== [...state.siteCards.keys()].join("\n")) {
      state.siteCards.clear();
      holder.replaceChildren();
      for (const id of ids) {
        const card = buildLineCard(id);
        state.siteCards.set(id, card);
        holder.append(card.root);
      }
    }
    for (const line of site.lines) {
      const { root, refs } = state.siteCards.get(line.id);
      const k = line.kpis || {};
      const current = line.id === state.lineId;
      root.classList.toggle("current", current);
      if (current) root.setAttribute("aria-current", "page");
      else root.removeAttribute("aria-current");
      root.title = `${line.topic_prefix || ""}${line.shared_repair_crew ? ` · crew ${line.shared_repair_crew}` : ""}`;
      setText(refs.name, line.name || line.id);
      refs.status.dataset.state = line.status;
      setText(refs.status, line.status);
      setRatio(refs.oee, k.oee);
      setText(refs.throughput, fmtNum(k.throughput_per_h, 1, "/calendar h"));
      setText(refs.good, fmtInt(k.good));
    }
  }

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

  // -- line ---------------------------------------------------------------------------
  function renderLine() {
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

  function stationRiskText(station) {
    if (isNum(station.defect_risk)) return fmtPct(station.defect_risk);
    const status = state.line && state.line.models && state.line.models.status;
    if (status === "training") return "training…";
    return status === "on" ? "no parts scored yet" : "off";
  }

  // A station's anomaly score, or why there is none: the models training, no drift
  // model, scoring off, or no complete telemetry window yet.
  function stationAnomalyText(station) {
    if (isNum(station.anomaly_score)) return fmtNum(station.anomaly_score, 2);
    const models = (state.line && state.line.models) || {};
    if (models.status === "training") return "training…";
    if (models.status !== "on") return "off";
    return models.anomaly_model ? "no window yet" : "no drift model";
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
  function stateLabel(station) {
    if (station.state === "planned_downtime") return station.planned_stop || "planned stop";
    return (station.state || "unknown").replace("_", " ");
  }

  function stateTitle(station) {
    if (station.state === "planned_downtime") return `planned stop (not a fault): ${station.planned_stop || station.state_reason || ""}`;
    return station.state_reason || "";
  }

  // The line KPIs name the bottleneck (active-period method, else the capacity
  // constraint). Without it: the station with the highest utilisation.
  function bottleneck() {
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

  // -- station cards ------------------------------------------------------------------
  function layoutStations() {
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
        el("dt", { text: "Anomaly" }), ref("anomaly", el("dd")),
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

  function renderAllStations() {
    for (const id of state.order) renderStation(id);
  }

  function renderStation(id) {
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
    setText(refs.anomaly, stationAnomalyText(station));
    refs.anomaly.classList.toggle("alert", isNum(station.anomaly_score) && station.anomaly_score >= 1);
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

  // -- station detail -----------------------------------------------------------------
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

  function fact(list, label, value, testid) {
    const dd = el("dd", { text: value, "data-testid": testid });
    list.append(el("dt", { text: label }), dd);
    return dd;
  }

  function renderDetail() {
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
    fact(processList, "anomaly score", stationAnomalyText(station), "detail-anomaly");

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

  function fillSetpointDefault() {
    const station = state.stations.get(state.selected);
    const form = byTestId("setpoint-form");
    const process = (station && station.process) || {};
    const name = form.elements.setpoint.value;
    if (isNum(process[name])) {
      form.elements.value.value = String(process[name]);
      state.fillPending = false;
    }
  }

  // -- alarms -------------------------------------------------------------------------
  async function pollAlarms() {
    const generation = state.generation;
    const result = await api("GET", linePath("/alarms"));
    if (generation !== state.generation) return;
    const list = byTestId("alarms");
    if (!result.ok) {
      list.replaceChildren(el("li", { class: "muted", text: `alarms: ${result.error}` }));
      return;
    }
    const alarms = result.data.alarms || [];
    setText(byTestId("alarms-count"), alarms.length ? `${alarms.length} active` : "");
    if (!alarms.length) {
      list.replaceChildren(el("li", { class: "muted", text: "no active alarms" }));
      return;
    }
    list.replaceChildren(
      ...alarms.map((alarm) => {
        const target = alarm.station ? stationHref(alarm.station) : alarm.link;
        return el("li", { class: `alarm ${alarm.severity}` }, [
          el("span", { class: "sev", text: alarm.severity }),
          el("a", { href: target, "data-testid": "alarm-link", text: alarm.station || "ingest" }),
          el("span", { class: "kind", text: alarm.kind.replace("_", " ") }),
          el("span", { class: "detail", text: alarm.detail }),
        ]);
      }),
    );
  }

  // -- where time and money go --------------------------------------------------------
  // GET /economics: the twin's losses valued with the line config's rates, for this
  // shift when the API holds a snapshot of its start, else since the twin started.
  async function pollEconomics() {
    const generation = state.generation;
    const result = await api("GET", linePath("/economics"));
    if (generation !== state.generation) return;
    if (!result.ok) {
      state.economics = null;
      byTestId("money").replaceChildren(el("p", { class: "muted", text: `money: ${result.error}` }));
      byTestId("loss-pareto").replaceChildren();
      setText(byTestId("money-window"), "");
      setText(byTestId("loss-bottleneck"), "");
      return;
    }
    state.economics = result.data;
    renderEconomics();
  }

  function stationName(id) {
    return (state.stations.get(id) || {}).name || id;
  }

  // A simulation time as the plant reads it: the time of day from the line's clock,
  // else the simulation clock, said so.
  function whenText(simS) {
    const line = state.line || {};
    const clock = line.clock || {};
    if (!clock.calendar || !isNum(clock.time_of_day_s) || !isNum(line.sim_time_s)) return `sim ${fmtClock(simS)}`;
    const day = 86400;
    const seconds = (((clock.time_of_day_s - (line.sim_time_s - simS)) % day) + day) % day;
    const hours = Math.floor(seconds / 3600);
    const minutes = Math.floor((seconds % 3600) / 60);
    return `${String(hours).padStart(2, "0")}:${String(minutes).padStart(2, "0")}`;
  }

  function windowLabel(economics) {
    if (economics.window === "shift") {
      return `this shift, since ${whenText(economics.window_start_s)} (${fmtDuration(economics.window_s)})`;
    }
    const shift = isNum(economics.shift_start_s)
      ? `; no snapshot of this shift's start (${whenText(Math.max(0, economics.shift_start_s))}) yet`
      : "";
    return `since the twin started (${fmtDuration(economics.window_s)})${shift}`;
  }

  function renderEconomics() {
    const economics = state.economics;
    if (!economics) return;
    const currency = economics.currency;
    const lost = economics.money_lost;
    const costs = economics.costs;
    let breakdowns = 0;
    let planned = 0;
    for (const row of economics.pareto) {
      if (row.category === "unplanned") breakdowns += row.cost;
      if (row.category === "planned") planned += row.cost;
    }
    const tile = (label, value, testid, title, extra = []) =>
      el("div", { class: "kpi", title: title || "" }, [
        el("span", { class: "label", text: label }),
        el("span", { class: "value", text: value, "data-testid": testid }),
        ...extra,
      ]);
    const perPart = (v, digits, unit) => (isNum(v) ? `${v.toFixed(digits)} ${unit}` : "–");
    setText(byTestId("money-window"), `Money lost ${windowLabel(economics)}`);
    byTestId("money").replaceChildren(
      tile("Downtime", fmtMoney(lost.downtime, currency), "money-downtime", "breakdowns, setups, maintenance, operator stops", [
        el("span", { class: "muted small" }, [
          "breakdowns ", el("span", { "data-testid": "money-unplanned", text: fmtMoney(breakdowns, currency) }),
          " · planned ", el("span", { "data-testid": "money-planned", text: fmtMoney(planned, currency) }),
        ]),
      ]),
      tile("Starved / blocked", fmtMoney(lost.starved_blocked, currency), "money-external"),
      tile("Speed & microstops", fmtMoney(lost.speed, currency), "money-speed", "APT × (1 − effectiveness): inferred, microstops send no message"),
      tile("Scrap & rework", fmtMoney(lost.quality, currency), "money-quality"),
      tile("Lost in total", fmtMoney(lost.total, currency), "money-total"),
      tile("Cost per good part", perPart(costs.cost_per_good_part, 2, currency), "cost-per-good-part",
        `labour ${fmtMoney(costs.labour_cost, currency)}, overhead ${fmtMoney(costs.overhead_cost, currency)}, energy ${fmtMoney(costs.energy_cost, currency)}, material ${fmtMoney(costs.material_cost, currency)} over ${fmtInt(costs.good_parts)} good parts`),
      tile("Energy per good part", perPart(costs.energy_per_good_part_kwh, 3, "kWh"), "energy-per-good-part",
        `${fmtNum(costs.energy_kwh, 1, "kWh")} over ${fmtInt(costs.good_parts)} good parts`),
      tile("Margin per calendar hour", isNum(costs.margin_per_hour) ? fmtMoney(costs.margin_per_hour, currency) : "–", "margin-per-hour"),
    );
    const neck = economics.bottleneck;
    if (neck) {
      const neckLost = economics.pareto.filter((row) => row.station === neck).reduce((sum, row) => sum + row.cost, 0);
      setText(byTestId("loss-bottleneck"), `Bottleneck: ${stationName(neck)} (its losses in this window: ${fmtMoney(neckLost, currency)}). An hour lost at the bottleneck is an hour lost to the whole line.`);
    } else {
      setText(byTestId("loss-bottleneck"), "Bottleneck: not known yet");
    }
    renderPareto(economics);
  }

  function renderPareto(economics) {
    const rows = economics.pareto.slice(0, 10);
    const holder = byTestId("loss-pareto");
    if (!rows.length) {
      holder.replaceChildren(el("p", { class: "muted", text: "no losses recorded yet" }));
      return;
    }
    const byMoney = rows[0].cost > 0;
    const max = byMoney ? rows[0].cost : Math.max(...rows.map((row) => row.time_s));
    const table = el("table", { class: "pareto-table" });
    table.append(el("tr", {}, ["Station", "Category", "", "Time", "Money", "Cum."].map((h) => el("th", { text: h }))));
    for (const row of rows) {
      const size = byMoney ? row.cost : row.time_s;
      const bar = svg("svg", { class: "pareto-bar", viewBox: "0 0 100 10", preserveAspectRatio: "none", "aria-hidden": "true" });
      bar.append(svg("rect", { x: "0", y: "1", height: "8", width: (max > 0 ? (100 * size) / max : 0).toFixed(2), class: `cat-${row.category}` }));
      const category = (LOSS_CATEGORIES.find((c) => c[0] === row.category) || [row.category, row.category])[1];
      table.append(
        el("tr", { class: row.station === economics.bottleneck ? "is-bottleneck" : null }, [
          el("td", {}, [el("a", { href: stationHref(row.station), text: row.station_name || stationName(row.station) })]),
          el("td", { title: category }, [el("span", { class: `swatch cat-${row.category}` }), row.reason]),
          el("td", { class: "bar-cell" }, [bar]),
          el("td", { class: "num", text: fmtDuration(row.time_s) }),
          el("td", { class: "num", text: fmtMoney(row.cost, economics.currency) }),
          el("td", { class: "num", text: fmtPct(row.cumulative_share, 0) }),
        ]),
      );
    }
    holder.replaceChildren(table);
  }

  // -- commands -----------------------------------------------------------------------
  async function lineCommand(body, label) {
    const node = byTestId("line-ack");
    node.classList.remove("ok", "bad");
    setText(node, `${label}: waiting for the line…`);
    showAck(node, await api("POST", "/line/commands", body), label);
  }

  async function stationCommand(body, label) {
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

  // -- jobs (optimizer, what-if) --------------------------------------------------------
  function jobBox(holder, job) {
    const progress = isNum(job.progress) ? Math.max(0, Math.min(1, job.progress)) : 0;
    holder.replaceChildren(
      el("div", { class: "progress" }, [el("div", { class: "fill", style: `width:${(progress * 100).toFixed(0)}%` })]),
      // The log line only while it runs: a finished job's outcome is its result, shown as a table.
      el("span", { class: `job-status ${job.status}`, text: `${job.kind || "job"} ${job.status} ${fmtPct(progress, 0)}${job.status === "running" && job.stage ? ` · ${job.stage}` : ""}${job.error ? ` · ${job.error}` : ""}` }),
    );
  }

  async function runJob(path, body, holder) {
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

  async function loadRecommendation() {
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
    const table = el("table", { class: "small-table" }, [el("tr", {}, ["Station", "Setpoint", "Now", "Recommended"].map((h) => el("th", { text: h })))]);
    for (const [station, values] of Object.entries(setpoints)) {
      for (const [name, value] of Object.entries(values)) {
        const now = ((state.stations.get(station) || {}).process || {})[name];
        table.append(el("tr", {}, [el("td", { text: station }), el("td", { text: name }), el("td", { class: "num", text: fmtNum(now, 2) }), el("td", { class: "num", text: fmtNum(value, 2) })]));
      }
    }
    holder.classList.remove("muted");
    holder.replaceChildren(table, ...recommendationWorth(result.data));
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
      ["Recommended", check.recommended],
      ["Today", check.current],
      ["Difference", check.difference],
    ];
    const table = el("table", { class: "small-table", "data-testid": "recommendation-worth" }, [
      el("tr", {}, [el("th", { text: `${objective} (${check.unit})` }), el("th", { text: `over ${fmtNum(check.hours, 0)} h` })]),
      ...rows.map(([label, iv]) => el("tr", {}, [el("td", { text: label }), el("td", { class: "num", text: `${fmtNum(iv.mean, 1)}${range(iv)}` })])),
    ]);
    const note = `${check.replications} fresh runs each; 95% interval for one run of ${fmtNum(check.hours, 0)} h (difference: 95% interval of the mean).` +
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
    const table = el("table", { class: "small-table", "data-testid": "scenario-table" }, [el("tr", {}, ["KPI", "Unit", "Baseline", "Scenario", "Difference"].map((h) => el("th", { text: h })))]);
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
  async function pollScenarios() {
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

  async function showScenario(scenarioId) {
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
      const done = await runJob(linePath("/optimize"), { objective: optimizeForm.elements.objective.value }, byTestId("optimize-job"));
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
  // -- imported history: the live line shows at once, the backfilled week when ready ------
  // True while the backfill still writes (keep asking).
  async function pollHistory() {
    const node = byTestId("history-status");
    const result = await api("GET", "/healthz");
    const backfill = result.data && typeof result.data === "object" ? result.data.backfill : null;
    if (!backfill || backfill.state === "off") {
      node.hidden = true;
      return false;
    }
    node.hidden = false;
    node.dataset.state = backfill.state;
    node.title = backfill.error || "";
    const done = fmtNum(backfill.simulated_days_done, 1);
    const total = fmtNum(backfill.simulated_days_total, 1);
    const texts = {
      backfilling: `history: backfilling ${fmtPct(backfill.fraction, 0)} (${done} of ${total} days)`,
      done: backfill.simulated_days_total > 0 ? `history: ${total} days imported` : "history: up to date",
      failed: "history: backfill failed",
      stopped: "history: backfill stopped",
    };
    setText(node, texts[backfill.state] || `history: ${backfill.state}`);
    return backfill.state === "backfilling";
  }

  async function followHistory() {
    if (await pollHistory()) setTimeout(followHistory, HISTORY_POLL_MS);
  }

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
  }

  document.addEventListener("DOMContentLoaded", start);
})();
