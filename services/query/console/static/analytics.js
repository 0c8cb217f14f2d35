// Analytics: per-tool, per-agent and per-server figures over a window (1 h, 24 h, 7 d, 30 d or
// custom), calls and errors over time as an SVG bar chart drawn here (no chart library) from one
// /v1/analytics/series request, drift findings, definition changes, rate limits.
import { getJson, query } from "./api.js";
import { h, link, route, table, visible } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const HOUR = 3600 * 1000;

function svg(tag, attrs, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = visible(text);
  return el;
}

function pct(x) { return x === null || x === undefined ? "" : `${(x * 100).toFixed(1)}%`; }
function num(x) { return x === null || x === undefined ? "" : String(Math.round(x * 10) / 10); }
function cost(list) { return (list || []).map((c) => `${c.micros / 1e6} ${c.currency}`).join(", "); }

function figures(first) {
  return [...first, { title: "calls", cell: (r) => String(r.calls), cls: "num" },
    { title: "success", cell: (r) => pct(r.success_rate), cls: "num" },
    { title: "denied", cell: (r) => pct(r.deny_rate), cls: "num" },
    { title: "step-up", cell: (r) => pct(r.step_up_rate), cls: "num" },
    { title: "p95 ms", cell: (r) => num(r.latency_ms?.p95), cls: "num" },
    { title: "cost", cell: (r) => cost(r.cost) }];
}

export function barChart(series, { width = 720, height = 160, title = "calls per hour" } = {}) {
  const max = Math.max(1, ...series.map((s) => s.value));
  const bw = width / Math.max(1, series.length);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height + 30}`, class: "chart", role: "img" });
  chart.append(svg("title", {}, title));
  series.forEach((s, i) => {
    const bh = (s.value / max) * height;
    const bar = svg("rect", { x: i * bw + 2, y: height - bh, width: Math.max(1, bw - 4), height: bh, class: "bar" });
    bar.append(svg("title", {}, `${s.label}: ${s.value}${s.errors ? `, ${s.errors} errors` : ""}`));
    chart.append(bar);
    const eh = (s.errors / max) * height;
    if (eh > 0) chart.append(svg("rect", { x: i * bw + 2, y: height - eh, width: Math.max(1, bw - 4), height: eh, class: "bar-error" }));
    if (i % Math.ceil(series.length / 8) === 0) chart.append(svg("text", { x: i * bw + 2, y: height + 20, class: "axis" }, s.label));
  });
  chart.append(svg("text", { x: 4, y: 12, class: "axis" }, `max ${max}`));
  return chart;
}

const WINDOWS = [[1, "1 h"], [24, "24 h"], [168, "7 d"], [720, "30 d"]];

function isoOrEmpty(value) {
  const t = value ? new Date(value) : null;
  return t && !Number.isNaN(t.getTime()) ? t.toISOString() : "";
}

// The window asked for: the last `hours` hours up to the end of the current hour, or a custom
// from/to (UTC, RFC 3339).
function windowOf(params) {
  if (params.from) return { from: params.from, to: params.to || "", hours: 0 };
  const hours = Math.min(24 * 400, Math.max(1, parseInt(params.hours || "24", 10) || 24));
  const end = Math.floor(Date.now() / HOUR) * HOUR + HOUR;
  return { from: new Date(end - hours * HOUR).toISOString(), to: new Date(end).toISOString(), hours };
}

function label(start, bucketHours, spanHours) {
  const iso = new Date(start).toISOString();
  if (bucketHours >= 24) return iso.slice(0, 10);
  return spanHours > 24 ? `${iso.slice(5, 10)} ${iso.slice(11, 16)}` : iso.slice(11, 16);
}

// One request: the server sums the rollups into at most 200 buckets (hourly up to 200 hours).
async function timeSeries(win, pair) {
  const page = await getJson(query("/v1/analytics/series", {
    from: win.from, to: win.to, server_id: pair?.server_id, tool_name: pair?.tool_name }));
  const span = (new Date(page.window.to) - new Date(page.window.from)) / HOUR;
  return { bucketHours: page.bucket_hours, points: page.points.map((p) => ({
    label: label(p.start, page.bucket_hours, span), value: p.calls, errors: p.errors,
    p95: Math.round(p.latency_ms?.p95 ?? 0) })) };
}

function windowPicker(win, params) {
  const from = h("input", { type: "datetime-local", id: "window-from", value: params.from ? params.from.slice(0, 16) : "" });
  const to = h("input", { type: "datetime-local", id: "window-to", value: params.to ? params.to.slice(0, 16) : "" });
  const form = h("form", { class: "window", id: "custom-window" }, "custom (UTC): ", from, " to ", to, " ",
    h("button", { type: "submit" }, "Show"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = isoOrEmpty(from.value && `${from.value}Z`);
    if (f) location.hash = route("analytics", { from: f, to: isoOrEmpty(to.value && `${to.value}Z`), tool: params.tool });
  });
  return h("p", {}, "Window: ", WINDOWS.map(([n, text]) => [h("a", {
    href: route("analytics", { hours: n, tool: params.tool }), class: n === win.hours ? "current" : "" }, text), " "]), form);
}

export async function analyticsView(view, params) {
  const win = windowOf(params);
  const span = { from: win.from, to: win.to };
  view.append(h("h2", {}, "Analytics"), windowPicker(win, params));
  const [tools, agents, servers, drift, limits] = await Promise.all([
    getJson(query("/v1/analytics/tools", span)), getJson(query("/v1/analytics/agents", span)),
    getJson(query("/v1/analytics/servers", span)), getJson("/v1/analytics/drift"),
    getJson(query("/v1/analytics/rate-limits", span))]);
  const pair = tools.tools.find((t) => `${t.server_id}/${t.tool_name}` === params.tool);
  const series = await timeSeries(win, pair);
  const pick = h("select", { id: "series-tool" }, h("option", { value: "" }, "all tools"),
    tools.tools.map((t) => { const v = `${t.server_id}/${t.tool_name}`; return h("option", { value: v, selected: v === params.tool }, v); }));
  pick.addEventListener("change", () => {
    location.hash = route("analytics", { hours: win.hours || undefined, from: params.from, to: params.to, tool: pick.value });
  });
  const per = series.bucketHours === 1 ? "hour" : `${series.bucketHours} h`;
  view.append(h("h3", { id: "series-title", "data-bucket-hours": series.bucketHours }, `Calls and errors per ${per}`),
              pick, barChart(series.points, { title: `calls per ${per}` }));
  if (pair) {
    view.append(h("h3", {}, `p95 latency (ms) per ${per}`),
                barChart(series.points.map((p) => ({ ...p, value: p.p95, errors: 0 })), { title: `p95 latency per ${per}` }));
  }
  view.append(h("h3", {}, "Tools"), table(figures([
    { title: "server", cell: (r) => link(r.server_id, "calls", { server: r.server_id }) },
    { title: "tool", cell: (r) => link(r.tool_name, "calls", { server: r.server_id, tool: r.tool_name }) }]), tools.tools, () => ({ class: "tool-row" })));
  view.append(h("h3", {}, "Agents"), table(figures([{ title: "agent", cell: (r) => link(r.agent_id, "calls", { agent: r.agent_id }) }]), agents.agents));
  view.append(h("h3", {}, "Servers"), table(figures([{ title: "server", cell: (r) => link(r.server_id, "calls", { server: r.server_id }) }]), servers.servers));
  view.append(h("h3", {}, "Drift"), h("p", {}, `${drift.tools_evaluated} tools evaluated`), table([
    { title: "server", cell: (f) => f.server_id }, { title: "tool", cell: (f) => f.tool_name },
    { title: "metric", cell: (f) => f.metric }, { title: "baseline", cell: (f) => num(f.baseline), cls: "num" },
    { title: "recent", cell: (f) => num(f.recent), cls: "num" }, { title: "ratio", cell: (f) => num(f.ratio), cls: "num" },
  ], drift.findings));
  view.append(h("h3", {}, "Tool-definition changes"), table(Object.keys(drift.definition_changes[0] || { change: 1 }).map((k) => (
    { title: k, cell: (c) => typeof c[k] === "object" ? JSON.stringify(c[k]) : String(c[k] ?? "") })), drift.definition_changes));
  view.append(h("h3", {}, "Rate limits"), table(Object.keys(limits.limits[0] || { limit: 1 }).map((k) => (
    { title: k, cell: (c) => typeof c[k] === "object" ? JSON.stringify(c[k]) : String(c[k] ?? "") })), limits.limits));
}
