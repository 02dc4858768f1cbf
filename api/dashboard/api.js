// The API as the page calls it: the token the user typed (kept in sessionStorage
// only; commands carry it), JSON requests, how an error or a command's
// acknowledgement reads, and the paths and links of the line shown.

import { state } from "./state.js";
import { byTestId, setText } from "./dom.js";
import { fmtClock, isNum } from "./format.js";

export const TOKEN_KEY = "factory-twin-token";

// -- token --------------------------------------------------------------------------
function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function showTokenState() {
  setText(byTestId("token-state"), token() ? "token set: commands enabled" : "no token: read-only");
}

export function hashParams() {
  return new URLSearchParams(location.hash.replace(/^#/, ""));
}

// A token in the fragment (#token=...) never reached the server; take it and
// remove it from the address bar and the history.
export function tokenFromFragment() {
  const params = hashParams();
  const fromUrl = params.get("token");
  if (!fromUrl) return;
  sessionStorage.setItem(TOKEN_KEY, fromUrl);
  params.delete("token");
  const rest = params.toString();
  history.replaceState(null, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
}

// -- HTTP ---------------------------------------------------------------------------
export async function api(method, path, body) {
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

export function showAck(node, result, what) {
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

// -- the line shown: its paths and links -----------------------------------------
export const firstLineId = () => (state.site && state.site.lines.length ? state.site.lines[0].id : null);
// The first line is the one the single-line endpoints (/twin, /stream, /alarms, ...) serve.
export const onFirstLine = () => !state.site || state.lineId === firstLineId();
// A resource of the shown line: /lines/{id}/... on a site, the single-line path else.
export const linePath = (path) => (state.site && state.lineId ? `/lines/${encodeURIComponent(state.lineId)}${path}` : path);
export const lineHref = (lineId) => `#line=${encodeURIComponent(lineId)}`;

export function stationHref(id, lineId = state.lineId) {
  const station = `station=${encodeURIComponent(id)}`;
  return state.site && lineId ? `${lineHref(lineId)}&${station}` : `#${station}`;
}
