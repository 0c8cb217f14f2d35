// Verify one event in the browser: fetch its tlog-proof file and its entry bytes, check them
// against the pinned checkpoint key, and compare with what the answer showed (leaf_hash,
// inconsistent). The pinned key is kept in localStorage under PIN_KEY.
import { getJson, getText, query } from "./api.js";
import { b64decode, verifyTlogProof } from "./verify.js";

export const PIN_KEY = "sealtrail.console.checkpointKey";

export function pinnedKey() { return localStorage.getItem(PIN_KEY) || ""; }
export function pinKey(vkey) {
  if (vkey) localStorage.setItem(PIN_KEY, vkey.trim()); else localStorage.removeItem(PIN_KEY);
}

async function logOfOrigin(origin) {
  const { logs } = await getJson("/v1/logs");
  const found = logs.find((l) => l.origin === origin);
  if (!found) throw new Error(`no log of this tenant has the origin ${origin}`);
  return found.log;
}

// {ok: true, index, size, root, leaf, origin} or {ok: false, reason}. `shown` is the row the
// page showed ({log, index, leaf_hash, inconsistent}), when there is one.
export async function checkEvent(eventId, shown) {
  const vkey = pinnedKey();
  if (!vkey) return { ok: false, reason: "no checkpoint key is pinned (Keys page)" };
  try {
    const proofText = await getText(`/v1/events/${encodeURIComponent(eventId)}/tlog-proof`);
    const origin = proofText.split("\n\n", 2)[1]?.split("\n", 1)[0] || "";
    const log = shown?.log || await logOfOrigin(origin);
    const index = /\nindex (\d+)\n/.exec(proofText)?.[1];
    if (index === undefined) return { ok: false, reason: "the proof file has no index" };
    const page = await getJson(query(`/v1/logs/${encodeURIComponent(log)}/entries`,
                                     { start: index, end: String(BigInt(index) + 1n) }));
    if (page.entries.length !== 1) return { ok: false, reason: `entry ${index} of ${log} was not served` };
    const result = await verifyTlogProof(proofText, b64decode(page.entries[0].entry, "entry"), vkey);
    const out = { ok: true, log, ...result };
    if (shown) {
      if (shown.inconsistent?.length) {
        return { ...out, ok: false, reason: `the answer flags ${shown.inconsistent.join(", ")} as inconsistent` };
      }
      if (shown.leaf_hash !== result.leaf || BigInt(shown.index) !== result.index) {
        return { ...out, ok: false, reason: "the row shown is not the entry in the signed log" };
      }
    }
    return out;
  } catch (e) {
    return { ok: false, reason: e.message || String(e) };
  }
}
