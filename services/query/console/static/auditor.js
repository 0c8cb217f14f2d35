// Auditor views: checkpoints, published keys (and the pinned key), verification of any event.
import { getJson, query } from "./api.js";
import { pinKey, pinnedKey } from "./check.js";
import { field, h, kv, route, table } from "./dom.js";
import { runCheck } from "./investigator.js";
import { parseNote } from "./verify.js";

export async function checkpointsView(view, params) {
  const { logs } = await getJson("/v1/logs");
  view.append(h("h2", {}, "Checkpoints"));
  const log = params.log || logs[0]?.log;
  view.append(h("p", {}, "Logs: ", logs.map((l) => [h("a", { href: route("checkpoints", { log: l.log }) }, l.log), " "])));
  if (!log) return;
  const info = logs.find((l) => l.log === log);
  view.append(kv([["log", log], ["origin", info?.origin], ["size", info ? String(info.size) : ""]]));
  const size = info?.size || 0;
  const page = await getJson(query(`/v1/logs/${encodeURIComponent(log)}/checkpoints`,
                                   { from: Math.max(0, size - 1000), to: size }));
  const rows = page.checkpoints.slice(-100).reverse().map((c) => ({ ...c, sigs: parseNote(c.note).signatures }));
  view.append(table([
    { title: "size", cell: (c) => String(c.size), cls: "num" },
    { title: "signed at", cell: (c) => c.signed_at },
    { title: "root", cell: (c) => c.note.split("\n")[2], cls: "mono" },
    { title: "signers and cosigners", cell: (c) => c.sigs.map((s) => s.name).join(", ") },
  ], rows));
}

export async function keysView(view) {
  const { keys } = await getJson("/v1/keys");
  view.append(h("h2", {}, "Published keys"));
  view.append(table([
    { title: "purpose", cell: (k) => k.purpose },
    { title: "verifier key", cell: (k) => k.vkey, cls: "mono" },
    { title: "not before", cell: (k) => k.not_before ?? "" },
    { title: "not after", cell: (k) => k.not_after ?? "" },
  ], keys));
  const input = h("textarea", { id: "pinned-key", rows: 2, cols: 90 }, pinnedKey());
  const save = h("button", { type: "button", id: "pin" }, "Pin");
  const state = h("span", { id: "pin-state" }, pinnedKey() ? "a key is pinned" : "no key is pinned");
  save.addEventListener("click", () => { pinKey(input.value); state.textContent = input.value.trim() ? "pinned" : "no key is pinned"; });
  view.append(h("section", {}, h("h3", {}, "Pinned checkpoint key"),
    h("p", {}, "The checks in this browser trust only this key. Paste it from a source you trust, "
      + "not from the list above, which comes from the server being checked."),
    input, " ", save, " ", state));
}

export async function verifyView(view, params) {
  const id = h("input", { name: "id", value: params.id || "", size: 40, placeholder: "event id" });
  const form = h("form", { class: "filters" }, field("event", id), h("button", { type: "submit" }, "Verify"));
  form.addEventListener("submit", (e) => { e.preventDefault(); location.hash = route("verify", { id: id.value.trim() }); });
  view.append(h("h2", {}, "Verify an event in this browser"), form);
  if (!params.id) return;
  const box = h("div", { id: "verdict", class: "verdict" });
  view.append(box);
  await runCheck(box, params.id, null);
}
