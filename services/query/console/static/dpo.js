// DPO views: find a subject (counts and dates, no payloads), export, erase, legal hold, history.
import { getJson, query, send } from "./api.js";
import { downloadJson, fail, field, h, kv, link, route } from "./dom.js";
import { openNote, parseVkey } from "./verify.js";

async function subjectCalls(subject) {
  const calls = [];
  let cursor = null;
  do {
    const page = await getJson(query("/v1/calls", { subject, type: "all", limit: 1000, cursor }));
    calls.push(...page.calls);
    cursor = page.next;
  } while (cursor && calls.length < 10000);
  return calls;
}

async function receiptCheck(receipt) {
  if (!receipt) return "no receipt";
  const { keys } = await getJson("/v1/keys");
  for (const k of keys.filter((x) => x.purpose === "erasure-receipt")) {
    try { await openNote(receipt, await parseVkey(k.vkey)); return "signature verified"; } catch { /* next */ }
  }
  return "signature NOT verified";
}

function confirmErase(box, subject, onDone) {
  const ref = h("input", { name: "request_ref", required: true, placeholder: "e.g. DSR-2026-0042" });
  const basis = h("input", { name: "legal_basis", required: true, value: "gdpr.art17.1a" });
  const form = h("form", { class: "erase" }, field("request reference", ref), field("legal basis", basis),
                 h("button", { type: "submit" }, "Erase\u2026"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const sure = h("div", { class: "confirm", role: "alertdialog" },
      h("p", {}, "Erase every payload of subject ", h("strong", { class: "mono" }, subject),
        " under request ", h("strong", { class: "mono" }, ref.value), "? This cannot be undone."));
    const yes = h("button", { type: "button", id: "confirm-erase" }, "Yes, erase");
    const no = h("button", { type: "button" }, "Cancel");
    no.addEventListener("click", () => sure.remove());
    yes.addEventListener("click", async () => {
      sure.remove();
      try {
        const r = await send("POST", "/v1/subjects/erase", { subject, request_ref: ref.value, legal_basis: basis.value });
        box.append(h("p", { class: "ok", id: "erased" }, `erasure ${r.state}: ${r.payloads_deleted} payloads deleted`));
        onDone();
      } catch (err) { fail(box, err); }
    });
    sure.append(yes, no);
    box.append(sure);
  });
  return form;
}

function holdForms(box, subject, hold, onDone) {
  if (hold) {
    // The reason is not marked required here: the server refuses a release without one, and says so.
    const why = h("input", { name: "release_reason", id: "release-reason", placeholder: "e.g. litigation.closed" });
    const release = h("form", { class: "release" }, field("release reason code", why),
                      h("button", { type: "submit", id: "release-hold" }, "Release legal hold"));
    release.addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        await send("DELETE", "/v1/subjects/hold", { subject, reason: why.value || undefined });
        onDone();
      } catch (err) { fail(box, err); }
    });
    return h("div", {}, kv(Object.entries(hold).map(([k, v]) => [k, v])), release);
  }
  const reason = h("input", { name: "reason", required: true, placeholder: "e.g. litigation" });
  const caseRef = h("input", { name: "case_ref", placeholder: "optional case reference" });
  const form = h("form", { class: "hold" }, field("reason code", reason), field("case", caseRef),
                 h("button", { type: "submit" }, "Set legal hold"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await send("PUT", "/v1/subjects/hold", { subject, reason: reason.value, case_ref: caseRef.value || undefined });
      onDone();
    } catch (err) { fail(box, err); }
  });
  return form;
}

function releasedHolds(released) {
  if (!released?.length) return null;
  return h("table", { id: "released-holds" },
    h("thead", {}, h("tr", {}, ["hold reason", "case", "set", "released", "release reason", "released by"].map((t) => h("th", {}, t)))),
    h("tbody", {}, released.map((r) => h("tr", {}, h("td", {}, r.reason), h("td", {}, r.case_ref ?? ""), h("td", {}, r.set_at),
      h("td", {}, r.released_at), h("td", { class: "release-reason" }, r.release_reason), h("td", {}, r.released_by)))));
}

async function exportForm(box, subject) {
  const purpose = h("input", { name: "purpose", required: true, value: "gdpr.art15" });
  const form = h("form", { class: "export" }, field("purpose code", purpose), h("button", { type: "submit" }, "Download export"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const pages = [];
      let cursor;
      do {
        const page = await send("POST", "/v1/subjects/export", { subject, purpose: purpose.value, cursor });
        pages.push(page);
        cursor = page.next;
      } while (cursor);
      downloadJson("sealtrail-export.json", { subject, pages });
      box.append(h("p", { class: "ok", id: "exported" }, `exported ${pages.reduce((n, p) => n + p.entries.length, 0)} entries`));
    } catch (err) { fail(box, err); }
  });
  return form;
}

export async function subjectView(view, params) {
  const subject = h("input", { name: "subject", value: params.subject || "", placeholder: "user:alice@example.com" });
  const find = h("form", { class: "filters" }, field("subject", subject), h("button", { type: "submit" }, "Find"));
  find.addEventListener("submit", (e) => { e.preventDefault(); location.hash = route("subjects", { subject: subject.value }); });
  view.append(h("h2", {}, "Data subjects"), find);
  if (!params.subject) return;
  const s = params.subject;
  const reload = () => window.dispatchEvent(new HashChangeEvent("hashchange"));
  const calls = await subjectCalls(s);
  const times = calls.map((c) => c.header?.occurred_at).filter(Boolean).sort();
  const byType = {};
  for (const c of calls) byType[c.header?.type] = (byType[c.header?.type] || 0) + 1;
  view.append(h("section", { id: "subject" }, h("h3", {}, "Subject ", h("span", { class: "mono" }, s)),
    kv([["entries", String(calls.length)], ["first", times[0]], ["last", times[times.length - 1]],
        ...Object.entries(byType).map(([t, n]) => [`type ${t}`, String(n)])])));
  const history = await getJson(query("/v1/subjects/erasures", { subject: s }));
  const box = h("div", { id: "dpo-actions" });
  view.append(h("section", {}, h("h3", {}, "Export (Art. 15)"), await exportForm(box, s)),
    h("section", {}, h("h3", {}, "Legal hold"), holdForms(box, s, history.hold, reload), releasedHolds(history.released_holds)),
    h("section", {}, h("h3", {}, "Erase (Art. 17)"), confirmErase(box, s, reload)), box);
  const rows = await Promise.all(history.erasures.map(async (r) => h("tr", {},
    h("td", {}, r.requested_at), h("td", { class: "mono" }, r.request_ref), h("td", {}, r.legal_basis),
    h("td", {}, r.state), h("td", { class: "num" }, String(r.payloads_deleted)),
    h("td", {}, r.log_index === null ? "" : String(r.log_index)),
    h("td", { class: "receipt" }, await receiptCheck(r.receipt)),
    h("td", {}, r.inconsistent?.length ? `inconsistent: ${r.inconsistent.join(", ")}` : ""))));
  view.append(h("section", {}, h("h3", {}, "Erasure history"), h("table", { id: "erasures" },
    h("thead", {}, h("tr", {}, ["requested", "request", "basis", "state", "payloads", "log index", "receipt", ""].map((t) => h("th", {}, t)))),
    h("tbody", {}, rows))));
  if (calls.length) view.append(h("p", {}, link("Calls of this subject", "calls", { subject: s, type: "all" })));
}
