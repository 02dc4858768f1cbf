// How figures read: counts, percentages, numbers with units, durations, clock
// times, money; and a ratio's cell, marked when above 100 %.

import { setText } from "./dom.js";

export const isNum = (v) => typeof v === "number" && Number.isFinite(v);
export const fmtInt = (v) => (isNum(v) ? Math.round(v).toLocaleString("en-US") : "–");
export const fmtPct = (v, digits = 1) => (isNum(v) ? `${(v * 100).toFixed(digits)} %` : "–");
export const fmtNum = (v, digits = 2, unit = "") =>
  isNum(v) ? `${v.toFixed(digits)}${unit ? ` ${unit}` : ""}` : "–";

// A ratio above 1 is shown as measured, never capped, and marked with the reason.
const ABOVE_ONE =
  "Above 100 %: the parts made took less running time than their planned runtime per unit " +
  "(PRU, the rated fastest cycle) allows. That happens by chance over few parts, since " +
  "processing times vary around their mean, or when the line publishes a PRU slower than " +
  "it really runs. Shown as measured (docs/kpis.md).";

export function setRatio(node, v, digits = 1) {
  if (!node) return;
  const above = isNum(v) && v > 1;
  setText(node, above ? `${fmtPct(v, digits)} ▲` : fmtPct(v, digits));
  node.classList.toggle("above-one", above);
  if (above) node.title = ABOVE_ONE;
  else node.removeAttribute("title");
}

export function fmtDuration(seconds) {
  if (!isNum(seconds)) return "–";
  const s = Math.max(0, seconds);
  if (s < 90) return `${s.toFixed(0)} s`;
  if (s < 5400) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(2)} h`;
}

export function fmtClock(seconds) {
  if (!isNum(seconds)) return "–";
  const total = Math.floor(seconds);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return `${h}:${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}`;
}

export function fmtMoney(v, currency) {
  return isNum(v) ? `${v.toFixed(2)} ${currency || ""}`.trim() : "–";
}
