// The SSE stream GET /stream of the first line (reset, line and station events;
// EventSource reconnects by itself with Last-Event-ID), and the connection pill.

import { state } from "./state.js";
import { byTestId, setText } from "./dom.js";

// Follow the stream; `on` maps each event ("reset", "line", "station") to what
// is done with its data.
export function connect(on) {
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
      setTimeout(() => current() && connect(on), 5000);
    } else {
      setConnection("reconnecting", "reconnecting…");
    }
  };
  for (const [name, handle] of Object.entries(on)) {
    source.addEventListener(name, (event) => {
      if (current()) handle(JSON.parse(event.data));
    });
  }
}

// The stream's own state ("live", "reconnecting"...). A paused line is never shown
// as live: the pill says "paused" while the line's retained status says so.
export function setConnection(kind, text) {
  state.connection = { kind, text };
  renderConnection();
}

export function renderConnection() {
  const pill = byTestId("conn-status");
  const { kind, text } = state.connection;
  const paused = Boolean(state.line && state.line.paused) && (kind === "live" || kind === "polling");
  pill.dataset.state = paused ? "paused" : kind;
  setText(pill, paused ? "paused" : text);
  pill.title = paused ? "The line is paused on command: nothing moves until it resumes." : "";
}
