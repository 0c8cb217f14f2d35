// The console shell: sign-in, the views of the signed-in role, and hash routing.
import { getJson, request, send, setCsrf } from "./api.js";
import { analyticsView } from "./analytics.js";
import { checkpointsView, keysView, verifyView } from "./auditor.js";
import { fail, h, route } from "./dom.js";
import { subjectView } from "./dpo.js";
import { callView, searchView, sessionView } from "./investigator.js";

// name: [title, scope needed, view, shown in the navigation]
const VIEWS = {
  calls: ["Calls", "calls:read", searchView, true],
  session: ["Session", "calls:read", sessionView, false],
  call: ["Call", "calls:read", callView, false],
  analytics: ["Analytics", "analytics:read", analyticsView, true],
  subjects: ["Subjects", "subjects:erase", subjectView, true],
  checkpoints: ["Checkpoints", "proofs:read", checkpointsView, true],
  keys: ["Keys", "proofs:read", keysView, true],
  verify: ["Verify", "proofs:read", verifyView, true],
};

let who = null;
const root = document.getElementById("app");
const nav = document.getElementById("nav");
const user = document.getElementById("user");

function allowed(name) { return who && VIEWS[name] && who.scopes.includes(VIEWS[name][1]); }

function firstView() { return Object.keys(VIEWS).find((n) => allowed(n) && VIEWS[n][3]); }

function signInForm(message) {
  who = null;
  setCsrf(null);
  nav.replaceChildren();
  user.replaceChildren();
  const key = h("input", { type: "password", id: "key", autocomplete: "off", required: true, placeholder: "st_..." });
  const form = h("form", { id: "sign-in" }, h("h2", {}, "Sign in"),
    h("label", {}, h("span", {}, "API key (investigator, dpo or auditor)"), key), h("button", { type: "submit" }, "Sign in"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const r = await (await request("POST", "/console/session", { body: { key: key.value } })).json();
      key.value = "";
      signedIn(r);
    } catch (err) { fail(form, err); }
  });
  root.replaceChildren(form);
  if (message) fail(form, message);
  key.focus();
}

function signedIn(r) {
  who = r;
  setCsrf(r.csrf);
  nav.replaceChildren(...Object.keys(VIEWS).filter((n) => allowed(n) && VIEWS[n][3])
    .map((n) => h("a", { href: route(n), "data-view": n }, VIEWS[n][0])));
  const out = h("button", { type: "button", id: "sign-out" }, "Sign out");
  out.addEventListener("click", async () => {
    try { await send("DELETE", "/console/session"); } finally { signInForm(); }
  });
  user.replaceChildren(h("span", { id: "role" }, `${r.role} \u00b7 ${r.tenant}`), " ", out);
  show();
}

async function show() {
  if (!who) return;
  const [path, q] = location.hash.replace(/^#\/?/, "").split("?", 2);
  const name = path || firstView();
  const view = h("div", { id: "view", "data-view": name, "data-route": location.hash });
  root.replaceChildren(view);
  for (const a of nav.children) a.classList.toggle("current", a.dataset.view === name);
  if (!allowed(name)) {
    view.append(h("p", { class: "error" }, `There is no page ${name} for the role ${who.role}.`));
    view.dataset.ready = "absent";
    return;
  }
  document.title = `Sealtrail \u00b7 ${VIEWS[name][0]}`;
  try {
    await VIEWS[name][2](view, Object.fromEntries(new URLSearchParams(q || "")), who);
    view.dataset.ready = "true";
  } catch (err) {
    fail(view, err);
    view.dataset.ready = "error";
  }
}

window.addEventListener("hashchange", show);
document.addEventListener("signed-out", (e) => { if (who) signInForm(e.detail?.detail || "signed out"); });

getJson("/console/session").then(signedIn, () => signInForm());
