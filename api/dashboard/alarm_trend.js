// A sensor alarm's trend, opened from the alarm list: the sensor's readings around
// the alarm, minute by minute of line time, against the band the sensor watch
// expected (its expectation ± 3 prediction spreads), from GET /alarms/{id}/trend.
// The band shows where the reading should have been; the line, where it was.
// Drawn as inline SVG; refreshed with the alarm list while it is open.

import { byTestId, el, svg } from "./dom.js";
import { api, linePath } from "./api.js";
import { fmtClock, fmtNum, isNum } from "./format.js";

const WIDTH = 480;
const HEIGHT = 140;
const PAD = 4;
const REFRESH_MS = 10_000;

let openId = null;
let shownAt = 0;
let loading = false;

export function openAlarmTrend(alarmId) {
  openId = alarmId;
  shownAt = 0;
  const node = byTestId("alarm-trend");
  node.hidden = false;
  node.replaceChildren(el("p", { class: "muted", text: `${alarmId}: loading…` }));
  renderAlarmTrend();
}

function closeAlarmTrend() {
  openId = null;
  const node = byTestId("alarm-trend");
  node.hidden = true;
  node.replaceChildren();
}

// Runs of judged minutes: a minute the watch did not judge breaks the band.
function judgedRuns(points) {
  let run = [];
  const runs = [run];
  for (const p of points) {
    if (isNum(p.expected)) run.push(p);
    else if (run.length) runs.push((run = []));
  }
  return runs.filter((r) => r.length);
}

const digitsFor = (span) => (span >= 100 ? 0 : span >= 10 ? 1 : 2);

function drawing(trend) {
  const points = trend.points;
  const judged = points.filter((p) => isNum(p.expected));
  const values = [
    ...points.flatMap((p) => [p.lowest, p.highest]),
    ...judged.flatMap((p) => [p.low, p.high]),
  ];
  let low = Math.min(...values);
  let high = Math.max(...values);
  if (high === low) {
    high += 1;
    low -= 1;
  }
  const start = trend.from_s;
  const end = Math.max(trend.to_s, start + trend.bin_s);
  const x = (t) => ((t - start) / (end - start)) * WIDTH;
  const y = (v) => HEIGHT - PAD - ((v - low) / (high - low)) * (HEIGHT - 2 * PAD);
  const mid = (p) => x(p.at_s + trend.bin_s / 2);
  const outside = judged.filter((p) => p.reading < p.low || p.reading > p.high).length;
  const chart = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    class: "alarm-trend-chart",
    preserveAspectRatio: "none",
    "data-testid": "alarm-trend-chart",
    "data-points": String(points.length),
    "data-judged": String(judged.length),
    "data-outside": String(outside),
    "data-last-s": String(points.length ? points[points.length - 1].at_s : NaN),
    role: "img",
    "aria-label": `${trend.sensor} at ${trend.station}: readings against the expected band`,
  });
  // The band, over each run of judged minutes.
  for (const part of judgedRuns(points)) {
    const upper = part.map((p) => `${mid(p).toFixed(1)},${y(p.high).toFixed(1)}`);
    const lower = part.map((p) => `${mid(p).toFixed(1)},${y(p.low).toFixed(1)}`).reverse();
    chart.append(svg("polygon", { class: "band", "data-testid": "alarm-trend-band", points: [...upper, ...lower].join(" ") }));
    chart.append(
      svg("polyline", { class: "expected-line", points: part.map((p) => `${mid(p).toFixed(1)},${y(p.expected).toFixed(1)}`).join(" ") }),
    );
  }
  // Each minute's least to greatest reading, then their means.
  for (const p of points) {
    if (p.highest > p.lowest) {
      chart.append(svg("line", { class: "reading-range", x1: mid(p), x2: mid(p), y1: y(p.lowest), y2: y(p.highest) }));
    }
  }
  chart.append(
    svg("polyline", { class: "trend-line", points: points.map((p) => `${mid(p).toFixed(1)},${y(p.reading).toFixed(1)}`).join(" ") }),
  );
  // When the fault began and when the alarm cleared.
  for (const [at, cls] of [
    [trend.started_s, "mark-start"],
    [trend.cleared_s, "mark-clear"],
  ]) {
    if (isNum(at) && at >= start && at <= end) {
      chart.append(svg("line", { class: cls, x1: x(at), x2: x(at), y1: 0, y2: HEIGHT }));
    }
  }
  const digits = digitsFor(high - low);
  return { chart, low, high, digits, outside, judged: judged.length };
}

function caption(trend, figures) {
  const sensor = trend.sensor.replace(/_(c|mm_s|rpm|kw|bar)$/, "").replaceAll("_", " ");
  const cleared = isNum(trend.cleared_s) ? `cleared ${fmtClock(trend.cleared_s)}` : "still active";
  const began = isNum(trend.started_s) ? `began ${fmtClock(trend.started_s)}` : "began –";
  return [
    el("h3", {
      text: `${sensor} at ${trend.station}${trend.kind ? `: ${trend.kind.replaceAll("_", " ")}` : ""}`,
    }),
    el("p", {
      class: "small",
      "data-testid": "alarm-trend-caption",
      text:
        `Line time ${fmtClock(trend.from_s)} to ${fmtClock(trend.to_s)}, ${fmtNum(trend.bin_s / 60, 0, "min")} a point; ` +
        `${began}, ${cleared}. ${figures.outside} of ${figures.judged} judged minutes read outside ` +
        `the expected band (± ${trend.band_sd} sd).`,
    }),
  ];
}

// How far each minute read from what was expected, against the band's half-width:
// the band that is a hair's breadth on a reading's own scale, drawn to be read.
function deviation(trend) {
  const judged = trend.points.filter((p) => isNum(p.expected));
  const start = trend.from_s;
  const end = Math.max(trend.to_s, start + trend.bin_s);
  const span =
    Math.max(...judged.flatMap((p) => [Math.abs(p.lowest - p.expected), Math.abs(p.highest - p.expected), p.high - p.expected])) || 1;
  const x = (t) => ((t - start) / (end - start)) * WIDTH;
  const y = (v) => HEIGHT / 2 - (v / span) * (HEIGHT / 2 - PAD);
  const mid = (p) => x(p.at_s + trend.bin_s / 2);
  const chart = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    class: "alarm-trend-chart deviation",
    preserveAspectRatio: "none",
    "data-testid": "alarm-trend-deviation",
    role: "img",
    "aria-label": `${trend.sensor} at ${trend.station}: reading less expected, against the band`,
  });
  for (const part of judgedRuns(trend.points)) {
    const upper = part.map((p) => `${mid(p).toFixed(1)},${y(p.high - p.expected).toFixed(1)}`);
    const lower = part.map((p) => `${mid(p).toFixed(1)},${y(p.low - p.expected).toFixed(1)}`).reverse();
    chart.append(svg("polygon", { class: "band", points: [...upper, ...lower].join(" ") }));
    chart.append(
      svg("polyline", { class: "trend-line", points: part.map((p) => `${mid(p).toFixed(1)},${y(p.reading - p.expected).toFixed(1)}`).join(" ") }),
    );
    for (const p of part) {
      if (p.highest > p.lowest) {
        chart.append(svg("line", { class: "reading-range", x1: mid(p), x2: mid(p), y1: y(p.lowest - p.expected), y2: y(p.highest - p.expected) }));
      }
    }
  }
  chart.append(svg("line", { class: "expected-line", x1: 0, x2: WIDTH, y1: y(0), y2: y(0) }));
  return { chart, span, digits: digitsFor(2 * span) };
}

// The charts with their value axes (units on them) and their line-time axis.
function plot(trend, figures) {
  const off = deviation(trend);
  const signed = (v) => `${v > 0 ? "+" : v < 0 ? "−" : ""}${fmtNum(Math.abs(v), off.digits, trend.unit)}`;
  return el("div", { class: "alarm-trend-plot" }, [
    el("div", { class: "alarm-trend-axis small muted", "data-testid": "alarm-trend-axis" }, [
      el("span", { text: fmtNum(figures.high, figures.digits, trend.unit) }),
      el("span", { text: "reading" }),
      el("span", { text: fmtNum(figures.low, figures.digits, trend.unit) }),
    ]),
    figures.chart,
    el("div", { class: "alarm-trend-axis small muted" }, [
      el("span", { text: signed(off.span) }),
      el("span", { text: "less expected" }),
      el("span", { text: signed(-off.span) }),
    ]),
    off.chart,
    el("span"),
    el("div", { class: "alarm-trend-time small muted" }, [
      el("span", { text: fmtClock(trend.from_s) }),
      el("span", { text: fmtClock(trend.to_s) }),
    ]),
  ]);
}

export async function renderAlarmTrend(force = false) {
  const id = openId;
  const now = Date.now();
  if (!id || loading || (!force && now - shownAt < REFRESH_MS)) return;
  loading = true;
  try {
    const result = await api("GET", linePath(`/alarms/${encodeURIComponent(id)}/trend`));
    if (openId !== id) return;
    const node = byTestId("alarm-trend");
    const close = el("button", { type: "button", class: "quiet", "data-testid": "alarm-trend-close", text: "close" });
    close.addEventListener("click", closeAlarmTrend);
    if (!result.ok) {
      node.replaceChildren(el("p", { class: "bad", text: `trend of ${id}: ${result.error}` }), close);
    } else if (!result.data.points.length) {
      node.replaceChildren(el("p", { class: "muted", text: `${id}: ${result.data.note}` }), close);
    } else {
      const figures = drawing(result.data);
      const legend = el("p", { class: "alarm-trend-legend small muted" }, [
        el("span", { class: "key reading", text: "reading (minute mean, range)" }),
        el("span", { class: "key band", text: "expected ± 3 sd" }),
        el("span", { class: "key mark", text: "fault began, cleared" }),
      ]);
      node.replaceChildren(...caption(result.data, figures), plot(result.data, figures), legend, close);
    }
    node.dataset.alarmId = id;
    shownAt = Date.now();
  } finally {
    loading = false;
  }
}
