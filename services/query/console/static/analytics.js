// Analytics: per-tool, per-agent and per-server figures over a window, calls per hour as an SVG
// bar chart drawn here (no chart library), drift findings, definition changes, rate limits.
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

// Figures per hour for the last `hours` hours: of every tool, or of one ("server/tool").
async function hourly(hours, tool) {
  const end = Math.floor(Date.now() / HOUR) * HOUR + HOUR;
  const starts = Array.from({ length: hours }, (_, i) => end - (hours - i) * HOUR);
  return Promise.all(starts.map(async (t) => {
    const page = await getJson(query("/v1/analytics/tools", { from: new Date(t).toISOString(), to: new Date(t + HOUR).toISOString() }));
    const rows = page.tools.filter((r) => !tool || `${r.server_id}/${r.tool_name}` === tool);
    return { label: new Date(t).toISOString().slice(11, 16), value: rows.reduce((n, s) => n + s.calls, 0),
             errors: rows.reduce((n, s) => n + s.errors, 0),
             p95: tool && rows[0] ? Math.round(rows[0].latency_ms?.p95 ?? 0) : 0 };
  }));
}

export async function analyticsView(view, params) {
  const hours = Math.min(168, Math.max(1, parseInt(params.hours || "24", 10) || 24));
  const from = new Date(Date.now() - hours * HOUR).toISOString();
  view.append(h("h2", {}, "Analytics"), h("p", {}, "Window: ",
    [1, 6, 24, 168].map((n) => [h("a", { href: route("analytics", { hours: n }), class: n === hours ? "current" : "" }, `${n} h`), " "])));
  const [tools, agents, servers, drift, limits, series] = await Promise.all([
    getJson(query("/v1/analytics/tools", { from })), getJson(query("/v1/analytics/agents", { from })),
    getJson(query("/v1/analytics/servers", { from })), getJson("/v1/analytics/drift"),
    getJson(query("/v1/analytics/rate-limits", { from })), hourly(Math.min(hours, 24), params.tool)]);
  const pick = h("select", { id: "series-tool" }, h("option", { value: "" }, "all tools"),
    tools.tools.map((t) => { const v = `${t.server_id}/${t.tool_name}`; return h("option", { value: v, selected: v === params.tool }, v); }));
  pick.addEventListener("change", () => { location.hash = route("analytics", { hours, tool: pick.value }); });
  view.append(h("h3", {}, "Calls and errors per hour, last 24 h at most"), pick, barChart(series));
  if (params.tool) {
    view.append(h("h3", {}, "p95 latency (ms) per hour"),
                barChart(series.map((p) => ({ ...p, value: p.p95, errors: 0 })), { title: "p95 latency per hour" }));
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
