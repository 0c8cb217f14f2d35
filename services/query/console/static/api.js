// Requests to the query API with the session cookie; unsafe methods carry the CSRF token.
let csrf = null;

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export function setCsrf(token) { csrf = token; }

export async function request(method, path, { body, accept, headers } = {}) {
  const h = { ...(headers || {}) };
  if (accept) h.Accept = accept;
  if (body !== undefined) h["Content-Type"] = "application/json";
  if (csrf) h["X-CSRF-Token"] = csrf;  // same-origin only; the server needs it on writes and reveals
  const response = await fetch(path, { method, headers: h, credentials: "same-origin",
                                       body: body === undefined ? undefined : JSON.stringify(body) });
  if (!response.ok) {
    let problem = null;
    try { problem = await response.json(); } catch { /* not JSON */ }
    if (response.status === 401) document.dispatchEvent(new CustomEvent("signed-out", { detail: problem }));
    throw new ApiError(response.status, problem);
  }
  return response;
}

export async function getJson(path) { return (await request("GET", path)).json(); }
export async function getText(path) { return (await request("GET", path)).text(); }
export async function send(method, path, body) {
  const r = await request(method, path, { body });
  return r.status === 204 ? null : r.json();
}

export function query(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}
