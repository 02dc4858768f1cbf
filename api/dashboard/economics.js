// Where time and money go: the money lost, the costs per good part, and the
// Pareto of losses per station and category.

import { state } from "./state.js";
import { byTestId, el, headRow, setText, svg } from "./dom.js";
import { fmtClock, fmtDuration, fmtInt, fmtMoney, fmtNum, fmtPct, isNum } from "./format.js";
import { api, linePath, stationHref } from "./api.js";

const LOSS_CATEGORIES = [
  ["unplanned", "Breakdowns"],
  ["planned", "Setup, maintenance, stops"],
  ["external", "Starved / blocked"],
  ["speed", "Speed & microstops"],
  ["quality", "Quality (scrap, rework)"],
];

// GET /economics: the twin's losses valued with the line config's rates, for this
// shift when the API holds a snapshot of its start, else since the twin started.
export async function pollEconomics() {
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
export function whenText(simS) {
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
  table.append(headRow(["Station", "Category", "", "Time", "Money", "Cum."], [3, 4, 5]));
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
