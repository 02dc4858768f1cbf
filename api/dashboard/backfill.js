// Imported history: the live line shows at once, the backfilled week when ready.
// The pill beside the API docs link follows the backfill (GET /healthz).

import { byTestId, setText } from "./dom.js";
import { fmtNum, fmtPct } from "./format.js";
import { api } from "./api.js";

const HISTORY_POLL_MS = 2000; // while the backfill writes: GET /healthz

// True while the backfill still writes (keep asking).
async function pollHistory() {
  const node = byTestId("history-status");
  const result = await api("GET", "/healthz");
  const backfill = result.data && typeof result.data === "object" ? result.data.backfill : null;
  if (!backfill || backfill.state === "off") {
    node.hidden = true;
    return false;
  }
  node.hidden = false;
  node.dataset.state = backfill.state;
  node.title = backfill.error || "";
  const done = fmtNum(backfill.simulated_days_done, 1);
  const total = fmtNum(backfill.simulated_days_total, 1);
  const texts = {
    backfilling: `history: backfilling ${fmtPct(backfill.fraction, 0)} (${done} of ${total} days)`,
    done: backfill.simulated_days_total > 0 ? `history: ${total} days imported` : "history: up to date",
    failed: "history: backfill failed",
    stopped: "history: backfill stopped",
  };
  setText(node, texts[backfill.state] || `history: ${backfill.state}`);
  return backfill.state === "backfilling";
}

export async function followHistory() {
  if (await pollHistory()) setTimeout(followHistory, HISTORY_POLL_MS);
}
