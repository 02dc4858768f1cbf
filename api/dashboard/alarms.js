// The line's alarm list (ISA-18.2): what is active, waiting for an acknowledgement,
// shelved or out of service, each with its priority and state, linking to its
// station; with the token, an operator acknowledges, shelves (with a reason) and
// unshelves from here; a sensor alarm opens its trend against the band the sensor
// watch expected (alarm_trend.js). Below it, the alarms' changes of the last 8 hours.

import { state } from "./state.js";
import { byTestId, el, setText } from "./dom.js";
import { api, linePath, stationHref } from "./api.js";
import { fmtClock } from "./format.js";
import { openAlarmTrend, renderAlarmTrend } from "./alarm_trend.js";

const SHELF_S = 3600;
const HISTORY_H = 8;

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
  await Promise.all([pollHistory(generation), renderAlarmTrend()]);
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
