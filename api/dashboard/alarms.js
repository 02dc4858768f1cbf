// The line's alarm list (ISA-18.2): what is active, waiting for an acknowledgement,
// shelved or out of service, each with its priority and state, linking to its
// station.

import { state } from "./state.js";
import { byTestId, el, setText } from "./dom.js";
import { api, linePath, stationHref } from "./api.js";

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
    return;
  }
  list.replaceChildren(
    ...alarms.map((alarm) => {
      const target = alarm.station ? stationHref(alarm.station) : alarm.link;
      const where = alarm.station || (alarm.kind === "lag" ? "twin" : alarm.kind);
      return el("li", { class: `alarm ${alarm.severity}`, "data-state": alarm.state }, [
        el("span", {
          class: "sev",
          title: `${alarm.priority} priority, ${alarm.state.replaceAll("_", " ")}`,
          text: `${alarm.priority} · ${alarm.state_code}`,
        }),
        el("a", { href: target, "data-testid": "alarm-link", text: where }),
        el("span", { class: "kind", text: alarm.kind.replace("_", " ") }),
        el("span", { class: "detail", text: alarm.detail }),
      ]);
    }),
  );
}
