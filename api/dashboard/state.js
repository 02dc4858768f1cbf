// The page's shared state: the line shown and what is known of it. Every module
// reads and writes this one object; none keeps a copy of its own.

export const state = {
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
