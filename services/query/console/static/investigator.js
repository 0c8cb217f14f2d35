// Investigator views: call search, session timeline, call detail (reveal, in-browser check).
import { getJson, query } from "./api.js";
import { checkEvent } from "./check.js";
import { fail, field, h, kv, link, route, table } from "./dom.js";

const FILTERS = ["agent", "session", "server", "tool", "tier", "decision", "status", "type", "from", "to", "subject"];
// The closed sets of GET /v1/calls (services/query/calls.py CHOICES; a unit test keeps them equal).
const CHOICES = {
  tier: ["", "read", "write", "destructive", "unknown"],
  decision: ["", "allow", "deny", "step_up", "observe", "granted", "refused"],
  status: ["", "ok", "error", "denied", "pending", "timeout", "healthy", "degraded", "unhealthy"],
  type: ["", "tool_call", "approval", "rate_limit", "health_check", "tool_list", "server_status",
         "credential_rotation", "access", "erasure", "retention", "all"],
};

function input(name, value) {
  if (CHOICES[name]) {
    return h("select", { name }, CHOICES[name].map((c) => h("option", { value: c, selected: c === value }, c || "(any)")));
  }
  return h("input", { name, value: value || "", placeholder: name === "from" || name === "to" ? "RFC 3339" : "" });
}

function filtered(value, filter) {
  return value === undefined || value === null ? "" : link(value, "calls", { [filter]: value });
}

const h_ = (r) => r.header || {};

export function callColumns() {
  return [
    { title: "time", cell: (r) => link(h_(r).occurred_at, "call", { id: h_(r).event_id }) },
    { title: "type", cell: (r) => filtered(h_(r).type, "type") },
    { title: "agent", cell: (r) => filtered(h_(r).agent_id, "agent") },
    { title: "session", cell: (r) => h_(r).session_id ? link(h_(r).session_id, "session", { id: h_(r).session_id }) : "" },
    { title: "server", cell: (r) => filtered(h_(r).server_id, "server") },
    { title: "tool", cell: (r) => filtered(h_(r).tool_name, "tool") },
    { title: "tier", cell: (r) => filtered(h_(r).tool_tier, "tier") },
    { title: "decision", cell: (r) => filtered(h_(r).decision, "decision") },
    { title: "status", cell: (r) => filtered(h_(r).status, "status") },
    { title: "duration ms", cell: (r) => h_(r).latency_ms ?? h_(r).wait_ms ?? "", cls: "num" },
    { title: "log index", cell: (r) => r.inconsistent?.length ? `${r.index} (inconsistent)` : r.index, cls: "num" },
  ];
}

export async function searchView(view, params) {
  const form = h("form", { class: "filters" }, FILTERS.map((f) => field(f, input(f, params[f]))),
                 h("button", { type: "submit" }, "Search"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    location.hash = route("calls", Object.fromEntries(new FormData(form)));
  });
  view.append(h("h2", {}, "Calls"), form);
  const given = Object.fromEntries(FILTERS.map((f) => [f, params[f]]));
  const page = await getJson(query("/v1/calls", { ...given, cursor: params.cursor, limit: params.limit || 50 }));
  view.append(table(callColumns(), page.calls, (r) => ({ "data-event": h_(r).event_id })));
  if (!page.calls.length) view.append(h("p", {}, "No calls match."));
  if (page.inconsistent?.length) {
    view.append(h("p", { class: "error" }, `${page.inconsistent.length} stored rows disagree with the signed log`));
  }
  if (page.next) view.append(h("p", {}, link("Next page", "calls", { ...given, limit: params.limit, cursor: page.next })));
}

function ms(a, b) {
  const d = Date.parse(b) - Date.parse(a);
  return Number.isFinite(d) ? `+${d} ms` : "";
}

export async function sessionView(view, params) {
  const s = await getJson(query(`/v1/sessions/${encodeURIComponent(params.id)}`, { cursor: params.cursor }));
  view.append(h("h2", {}, "Session ", h("span", { class: "mono" }, s.session_id)));
  if (s.summary) view.append(kv(Object.entries(s.summary).map(([k, v]) => [k, typeof v === "object" ? JSON.stringify(v) : v])));
  if (s.summary_inconsistent?.length) {
    view.append(h("p", { class: "error" }, `summary disagrees with the signed log: ${s.summary_inconsistent.join(", ")}`));
  }
  const first = s.calls[0]?.header?.occurred_at;
  const cols = [{ title: "since start", cell: (r) => ms(first, h_(r).occurred_at), cls: "num" }, ...callColumns()];
  view.append(table(cols, s.calls, (r) => ({ "data-event": h_(r).event_id, class: `kind-${h_(r).type}` })));
  if (s.next) view.append(h("p", {}, link("Next page", "session", { id: params.id, cursor: s.next })));
}

function verdict(box, result) {
  box.replaceChildren();
  box.dataset.verified = result.ok ? "yes" : "no";
  box.className = result.ok ? "verdict ok" : "verdict bad";
  box.append(h("strong", {}, result.ok ? "verified" : "not verified"));
  if (result.reason) box.append(h("span", {}, ` \u2014 ${result.reason}`));
  if (result.root) {
    box.append(kv([["log", result.log], ["origin", result.origin], ["index", String(result.index)],
                   ["tree size", String(result.size)], ["root", result.root], ["leaf hash", result.leaf],
                   ["Ed25519 by", result.ed25519]]));
  }
}

export async function runCheck(box, eventId, shown) {
  box.replaceChildren(h("span", {}, "checking\u2026"));
  delete box.dataset.verified;
  verdict(box, await checkEvent(eventId, shown));
}

function revealForm(view, id) {
  const out = h("div", { id: "revealed" });
  const purpose = h("input", { name: "purpose", required: true, pattern: "[a-z][a-z0-9_.\\-]{0,63}", placeholder: "e.g. incident.review" });
  const form = h("form", { class: "reveal" }, field("purpose code", purpose), h("button", { type: "submit" }, "Reveal"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    out.replaceChildren();
    try {
      const r = await getJson(query(`/v1/calls/${encodeURIComponent(id)}`, { purpose: purpose.value }));
      out.append(kv([["payload", r.payload_state], ["detail", r.payload_detail],
                     ["access event", r.access_event_id ? link(r.access_event_id, "call", { id: r.access_event_id }) : ""]]));
      if (r.payload) out.append(h("pre", { class: "payload" }, JSON.stringify(r.payload, null, 2)));
    } catch (err) { fail(out, err); }
  });
  const button = h("button", { type: "button", id: "reveal" }, "Reveal payload\u2026");
  button.addEventListener("click", () => { button.replaceWith(form); purpose.focus(); });
  view.append(h("section", {}, h("h3", {}, "Payload"), button, out));
}

// Whether the tool's definition changed after this agent last used it under this call's hash
// (GET /v1/analytics/definition-changes: the tools whose definition changed since an agent's last use).
async function definitionState(hd) {
  const { stale } = await getJson(query("/v1/analytics/definition-changes", { agent_id: hd.agent_id, limit: 1000 }));
  const found = stale.find((d) => d.server_id === hd.server_id && d.tool_name === hd.tool_name
                                  && d.used_hash === hd.tool_def_hash);
  const box = h("p", { id: "definition", "data-changed": found ? "yes" : "no" });
  if (found) {
    box.append(h("strong", { class: "error" }, "The tool's definition has changed since"),
               ` (${found.change} at ${found.changed_at}; now ${found.current_hash ?? "removed"})`);
  } else {
    box.append("No change of the tool's definition is recorded after this agent last used it.");
  }
  return box;
}

export async function callView(view, params, who) {
  const r = await getJson(`/v1/calls/${encodeURIComponent(params.id)}`);
  const hd = r.header || {};
  view.append(h("h2", {}, "Call ", h("span", { class: "mono" }, hd.event_id)));
  view.append(kv([
    ["time", hd.occurred_at], ["type", hd.type], ["agent", filtered(hd.agent_id, "agent")],
    ["session", hd.session_id ? link(hd.session_id, "session", { id: hd.session_id }) : ""],
    ["server", filtered(hd.server_id, "server")], ["tool", filtered(hd.tool_name, "tool")],
    ["tier", hd.tool_tier], ["decision", filtered(hd.decision, "decision")], ["status", hd.status],
    ["policy", [hd.policy_id, hd.policy_version].filter(Boolean).join(" v")], ["latency ms", hd.latency_ms],
    ["cost", hd.cost_micros === undefined ? "" : `${hd.cost_micros / 1e6} ${hd.currency || ""}`],
    ["tool definition hash", hd.tool_def_hash], ["error", hd.error_type],
    ["log", r.log], ["index", String(r.index)], ["leaf hash", r.leaf_hash],
    ["inconsistent", r.inconsistent?.join(", ")],
  ]));
  if (hd.tool_def_hash && who.scopes.includes("analytics:read")) view.append(await definitionState(hd));
  view.append(h("details", {}, h("summary", {}, "signed header"), h("pre", {}, JSON.stringify(hd, null, 2))));
  if (who.scopes.includes("proofs:read")) {
    const box = h("div", { id: "verdict", class: "verdict" });
    const again = h("button", { type: "button", id: "verify" }, "Verify in this browser");
    again.addEventListener("click", () => runCheck(box, hd.event_id, r));
    view.append(h("section", {}, h("h3", {}, "Signed log"), again, box));
    runCheck(box, hd.event_id, r);
  }
  if (who.scopes.includes("calls:reveal")) revealForm(view, hd.event_id);
}
