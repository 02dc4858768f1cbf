// The site strip (GET /site): the site's name, its shared repair crews, and a
// card per line with its status, OEE, throughput and good parts.

import { state } from "./state.js";
import { byTestId, el, setText } from "./dom.js";
import { fmtInt, fmtNum, setRatio } from "./format.js";
import { api, lineHref } from "./api.js";

export function lineName(lineId) {
  const line = state.site && state.site.lines.find((l) => l.id === lineId);
  return line ? line.name || line.id : lineId || "";
}

export async function pollSite() {
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

export function renderSite() {
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
