// The line's alarm list (ISA-18.2): what is active, waiting for an acknowledgement,
// shelved or out of service, each with its priority and state, linking to its
// station; with the token, an operator acknowledges, shelves (with a reason) and
// unshelves from here; a sensor alarm opens its trend against the band the sensor
// watch expected (alarm_trend.js). Below it, the alarm system's figures over the
// last 24 line hours (ISA-18.2) and the alarms' changes of the last 8 hours.

import { state } from "./state.js";
import { byTestId, el, setText } from "./dom.js";
import { api, linePath, stationHref } from "./api.js";
import { fmtClock, fmtNum, fmtPct, isNum } from "./format.js";
import { openAlarmTrend, renderAlarmTrend } from "./alarm_trend.js";

const SHELF_S = 3600;
const HISTORY_H = 8;
// The alarm system's figures read the whole alarm record: asked for less often.
const KPI_HOURS = 24;
const KPI_EVERY_MS = 30_000;
let kpisAt = 0;

function actionPath(alarm, action) {
  return linePath(`/alarms/${encodeURIComponent(alarm.id)}/${action}`);
}

async function act(alarm, action, body) {
  const result = await api("POST", actionPath(alarm, action), body);
  const status = byTestId("alarms-action");
  status.classList.remove("ok", "bad");
  status.classList.add(result.ok ? "ok" : "bad");
  setText(
    status,
    result.ok
      ? `${alarm.id}: ${result.data.alarm.state.replaceAll("_", " ")}`
      : `${action} ${alarm.id}: ${result.error}`,
  );
  await pollAlarms();
}

function shelve(alarm) {
  // The reason is asked for: ISA-18.2 keeps why an alarm left the operator's list.
  const reason = window.prompt(`Shelve ${alarm.id} for 1 h of line time. Why?`, "");
  if (reason === null || !reason.trim()) return;
  act(alarm, "shelve", { for_s: SHELF_S, reason: reason.trim() });
}

function actions(alarm) {
  const buttons = [];
  if (alarm.kind === "sensor") {
    // The sensor's readings around the alarm against the band the watch expected.
    buttons.push(el("button", { type: "button", class: "quiet", "data-testid": "alarm-trend-open", text: "trend" }));
    buttons.at(-1).addEventListener("click", () => openAlarmTrend(alarm.id));
  }
  if (!alarm.acknowledged && alarm.state !== "shelved" && alarm.state !== "out_of_service") {
    buttons.push(el("button", { type: "button", "data-testid": "alarm-ack", text: "ack" }));
    buttons.at(-1).addEventListener("click", () => act(alarm, "ack", {}));
  }
  if (alarm.state === "shelved") {
    buttons.push(el("button", { type: "button", "data-testid": "alarm-unshelve", text: "unshelve" }));
    buttons.at(-1).addEventListener("click", () => act(alarm, "unshelve", {}));
  } else if (alarm.state !== "out_of_service") {
    buttons.push(el("button", { type: "button", class: "quiet", "data-testid": "alarm-shelve", text: "shelve" }));
    buttons.at(-1).addEventListener("click", () => shelve(alarm));
  }
  return el("span", { class: "alarm-actions" }, buttons);
}

export async function pollAlarms() {
  const generation = state.generation;
  const result = await api("GET", linePath("/alarms"));
  if (generation !== state.generation) return;
  const list = byTestId("alarms");
  if (!result.ok) {
    list.replaceChildren(el("li", { class: "muted", text: `alarms: ${result.error}` }));
    return;
  }
  const alarms = result.data.alarms || [];
  const active = alarms.filter((alarm) => alarm.active).length;
  const unacknowledged = alarms.filter((alarm) => !alarm.acknowledged).length;
  const counts = [];
  if (active) counts.push(`${active} active`);
  if (unacknowledged) counts.push(`${unacknowledged} to acknowledge`);
  setText(byTestId("alarms-count"), counts.join(", "));
  if (!alarms.length) {
    list.replaceChildren(el("li", { class: "muted", text: "no active alarms" }));
  } else {
    list.replaceChildren(
      ...alarms.map((alarm) => {
        const target = alarm.station ? stationHref(alarm.station) : alarm.link;
        const where = alarm.station || (alarm.kind === "lag" ? "twin" : alarm.kind);
        return el(
          "li",
          { class: `alarm ${alarm.severity}`, "data-state": alarm.state, "data-alarm-id": alarm.id },
          [
            el("span", {
              class: "sev",
              title: `${alarm.priority} priority, ${alarm.state.replaceAll("_", " ")}`,
              "data-testid": "alarm-state",
              text: `${alarm.priority} · ${alarm.state_code}`,
            }),
            el("a", { href: target, "data-testid": "alarm-link", text: where }),
            el("span", { class: "kind", text: alarm.kind.replace("_", " ") }),
            el("span", { class: "detail", text: alarm.detail }),
            actions(alarm),
          ],
        );
      }),
    );
  }
  await Promise.all([pollHistory(generation), renderAlarmTrend(), pollKpis(generation)]);
}

// ISA-18.2's figures of the alarm system, each against its published guidance.
function kpiRow(label, value, guidance, ok, testId) {
  return el("div", { class: `alarm-kpi ${ok ? "ok" : "bad"}`, "data-testid": testId }, [
    el("dt", { text: label }),
    el("dd", {}, [el("span", { class: "num", text: value }), el("span", { class: "muted", text: ` ${guidance}` })]),
  ]);
}

async function pollKpis(generation, force = false) {
  const now = Date.now();
  if (!force && now - kpisAt < KPI_EVERY_MS) return;
  kpisAt = now;
  const result = await api("GET", linePath(`/alarms/kpis?hours=${KPI_HOURS}`));
  if (generation !== state.generation) return;
  const node = byTestId("alarm-kpis");
  if (!result.ok) {
    node.replaceChildren(el("p", { class: "muted", text: `alarm system figures: ${result.error}` }));
    return;
  }
  const k = result.data;
  const ref = k.references;
  node.dataset.annunciated = String(k.annunciated);
  node.dataset.badActors = k.bad_actors.map((b) => b.alarm_id).join(" ");
  const span = `line time ${fmtClock(k.from_s)} to ${fmtClock(k.to_s)}`;
  if (!isNum(k.per_hour)) {
    node.replaceChildren(el("p", { class: "muted", text: `Alarm system: no line time yet (${span}).` }));
    return;
  }
  const rows = [
    kpiRow(
      "Alarms an hour",
      `${fmtNum(k.per_hour, 1)} /h`,
      `(${k.annunciated} annunciated; ≤ ${ref.alarms_per_hour_acceptable} acceptable, ≤ ${ref.alarms_per_hour_manageable} manageable)`,
      k.per_hour <= ref.alarms_per_hour_manageable,
      "alarm-kpi-rate",
    ),
    kpiRow(
      "In flood",
      fmtPct(k.flood_share),
      `of ${k.intervals} 10-min intervals (over 10 alarms; < ${fmtPct(ref.flood_share_max, 0)}); peak ${k.peak_per_interval} in 10 min`,
      k.flood_share <= ref.flood_share_max,
      "alarm-kpi-flood",
    ),
    kpiRow(
      "Chattering",
      String(k.chattering.length),
      k.chattering.length ? `(3+ in a minute): ${k.chattering.map((c) => c.alarm_id).join(", ")}` : "(3+ in a minute; none is the aim)",
      k.chattering.length <= ref.chattering_max,
      "alarm-kpi-chattering",
    ),
    kpiRow(
      "Stale",
      String(k.stale.length),
      k.stale.length ? `(active over 24 h): ${k.stale.map((x) => x.alarm_id).join(", ")}` : `(active over 24 h; < ${ref.stale_max})`,
      k.stale.length < ref.stale_max,
      "alarm-kpi-stale",
    ),
  ];
  const actors = k.bad_actors.length
    ? el(
        "ol",
        { class: "bad-actors small", "data-testid": "alarm-bad-actors" },
        k.bad_actors.map((b) => el("li", { text: `${b.alarm_id}: ${b.count} (${fmtPct(b.share, 0)} of all)` })),
      )
    : el("p", { class: "muted small", text: "no alarm annunciated in the window" });
  node.replaceChildren(
    el("p", { class: "small muted", text: `Alarm system (ISA-18.2), ${span}` }),
    el("dl", { class: "alarm-kpis-list small" }, rows),
    el("p", { class: "small", text: "Top bad actors" }),
    actors,
  );
}

async function pollHistory(generation) {
  const from = Date.now() - HISTORY_H * 3600 * 1000;
  const result = await api("GET", linePath(`/alarms/history?from=${from}&limit=200`));
  if (generation !== state.generation) return;
  const list = byTestId("alarm-history");
  if (!result.ok) {
    list.replaceChildren(el("li", { class: "muted", text: `history: ${result.error}` }));
    return;
  }
  const changes = (result.data.transitions || []).slice(-30).reverse();
  if (!changes.length) {
    list.replaceChildren(el("li", { class: "muted", text: `no alarm changes in the last ${HISTORY_H} h` }));
    return;
  }
  list.replaceChildren(
    ...changes.map((change) => {
      const who = change.by ? ` by ${change.by}` : "";
      const why = change.reason ? `: ${change.reason}` : "";
      return el("li", { "data-testid": "alarm-change" }, [
        el("span", { class: "muted", text: fmtClock(change.at_s) }),
        el("span", { text: ` ${change.alarm_id} ${change.event.replaceAll("_", " ")}${who}${why}` }),
      ]);
    }),
  );
}
