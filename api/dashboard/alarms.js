// The active alarms of the line shown, each linking to its station.

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
