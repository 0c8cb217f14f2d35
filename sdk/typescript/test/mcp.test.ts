/**
 * The MCP integration with the official TypeScript MCP SDK: a real stdio MCP server wrapped by
 * `recordServer` answers a real MCP client exactly as it does bare, and every tools/call it
 * answered is a tool_call in the ledger with its arguments and result sealed, status, latency and
 * tool facts; a wrapped MCP client records its calls the same way.
 */

import assert from "node:assert/strict";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import * as z from "zod";

import { SealtrailClient, toolDefHash } from "../src/index.ts";
import { recordClient, recordServer } from "../src/mcp.ts";
import { getJson, startServe, type Served } from "./support/serve.ts";

const SERVER = path.join(path.dirname(fileURLToPath(import.meta.url)), "support", "mcp-server.ts");
let served: Served;
let investigator: string;
before(async () => {
  served = await startServe();
  investigator = served.createKey("investigator");
});
after(async () => served?.stop());

type Call = Record<string, unknown> & { event_id: string; tool_name: string; status: string };

const SCRIPT: [string, Record<string, unknown>][] = [
  ["lookup_customer", { email: "alice@example.com" }],
  ["update_customer", { email: "alice@example.com", tier: "platinum" }],
  ["delete_customer", { email: "bob@example.com" }],
  ["lookup_customer", { email: "carol@example.com" }],
  ["no_such_tool", {}],
];

/** Run the script against the stdio server; the answers (or error messages) in order, and the tool list. */
async function runScript(env: Record<string, string>): Promise<{ answers: unknown[]; tools: unknown[] }> {
  const transport = new StdioClientTransport({ command: process.execPath, args: ["--import", "tsx", SERVER],
    env: { ...(process.env as Record<string, string>), ...env }, stderr: "inherit" });
  const client = new Client({ name: "support-bot", version: "1.0.0" });
  await client.connect(transport);
  const { tools } = await client.listTools();
  const answers: unknown[] = [];
  for (const [name, args] of SCRIPT) {
    try {
      answers.push(await client.callTool({ name, arguments: args }));
    } catch (e) {
      answers.push({ thrown: (e as Error).message });
    }
  }
  await client.close();
  return { answers, tools };
}

async function calls(query: string, want: number): Promise<Call[]> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const page = await getJson<{ calls: { header: Call; index: number }[] }>(`${served.url}/v1/calls?${query}&limit=100`, investigator);
    // In log order: the order the events were sent (two calls can share a timestamp).
    if (page.calls.length >= want || Date.now() > deadline) return [...page.calls].sort((a, b) => a.index - b.index).map((c) => c.header);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe("MCP integration", () => {
  it("a wrapped stdio MCP server answers as it does bare, and records every tools/call", async () => {
    const bare = await runScript({});
    const wrapped = await runScript({ SEALTRAIL_URL: served.url, SEALTRAIL_GATEWAY_TOKEN: served.tokens.gateway! });
    assert.deepEqual(wrapped.answers, bare.answers);
    assert.deepEqual(wrapped.tools, bare.tools);
    assert.equal((wrapped.answers[2] as { isError?: boolean }).isError, true);

    const logged = await calls("agent=support-bot&server=crm", SCRIPT.length);
    assert.equal(logged.length, SCRIPT.length, JSON.stringify(logged));
    assert.deepEqual(logged.map((c) => c.tool_name), SCRIPT.map(([name]) => name));
    assert.deepEqual(logged.map((c) => c.status), ["ok", "ok", "error", "ok", "error"]);
    assert.ok(logged.every((c) => c.decision === "observe"));
    assert.equal(logged[2]!.error_type, "tool_error");
    const lookup = (wrapped.tools as { name: string }[]).find((t) => t.name === "lookup_customer");
    assert.equal(logged[0]!.tool_def_hash, toolDefHash(lookup));
    assert.deepEqual(logged.slice(0, 3).map((c) => c.tool_tier), ["read", "write", "destructive"]);
    assert.ok(Number(logged[1]!.latency_ms) >= 20, `latency ${logged[1]!.latency_ms}`);
    assert.ok(logged.some((c) => !Number.isInteger(c.latency_ms)), "latencies keep their sub-millisecond part");

    const opened = await getJson<Record<string, unknown>>(`${served.url}/v1/calls/${logged[1]!.event_id}?purpose=incident_review`, investigator);
    const text = JSON.stringify(opened);
    assert.ok(text.includes("platinum") && text.includes("alice@example.com is now platinum"), text);
    const bySubject = await calls(`subject=${encodeURIComponent("user:carol@example.com")}`, 1);
    assert.deepEqual(bySubject.map((c) => c.event_id), [logged[3]!.event_id]);
  });

  it("a server wrapped after it connected records its calls too", async () => {
    const server = new McpServer({ name: "late", version: "1.0.0" });
    server.registerTool("ping", { inputSchema: { n: z.number() } }, async ({ n }) => ({ content: [{ type: "text", text: `pong ${n}` }] }));
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    await server.connect(serverSide);
    const sealtrail = new SealtrailClient(served.url, served.tokens.gateway!);
    recordServer(server, { client: sealtrail });
    const client = new Client({ name: "late-agent", version: "1.0.0" });
    await client.connect(clientSide);
    assert.deepEqual((await client.callTool({ name: "ping", arguments: { n: 3 } })).content, [{ type: "text", text: "pong 3" }]);
    await client.close();
    await sealtrail.close();
    const logged = await calls("agent=late-agent", 1);
    assert.deepEqual(logged.map((c) => [c.server_id, c.tool_name, c.status]), [["late", "ping", "ok"]]);
  });

  it("a wrapped MCP client records the calls it makes", async () => {
    const server = new McpServer({ name: "billing", version: "1.0.0" });
    server.registerTool("refund", { inputSchema: { amount: z.number() } }, async ({ amount }) => ({ content: [{ type: "text", text: `refunded ${amount}` }] }));
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    await server.connect(serverSide);
    const sealtrail = new SealtrailClient(served.url, served.tokens.gateway!);
    const client = recordClient(new Client({ name: "billing-agent", version: "1.0.0" }), { client: sealtrail, agentId: "refund-bot" });
    await client.connect(clientSide);
    const answer = await client.callTool({ name: "refund", arguments: { amount: 12 } });
    assert.deepEqual(answer.content, [{ type: "text", text: "refunded 12" }]);
    await client.close();
    await sealtrail.close();
    const logged = await calls("agent=refund-bot", 1);
    assert.equal(logged.length, 1);
    assert.equal(logged[0]!.server_id, "billing");
    assert.equal(logged[0]!.tool_name, "refund");
    assert.equal(logged[0]!.status, "ok");
  });
});

describe("MCP transport tap", () => {
  it("reads JSON-RPC batches, leaves every message and send option as it was, and survives a failing recorder", async () => {
    const { recordTransport } = await import("../src/mcp.ts");
    const sentOut: unknown[] = [];
    const seenIn: unknown[] = [];
    const recorded: unknown[] = [];
    const fakeClient = { send: async (e: unknown) => void recorded.push(e) } as unknown as SealtrailClient;
    const transport = {
      onmessage: (m: unknown, extra?: unknown) => void seenIn.push([m, extra]),
      send: async (m: unknown, o?: unknown) => void sentOut.push([m, o]),
    };
    recordTransport(transport, { client: fakeClient, agentId: "a", serverId: "s" }, "server");
    const batch = [{ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "t1", arguments: { x: 1 } } },
      { jsonrpc: "2.0", id: "2", method: "tools/call", params: { name: "t2" } }];
    transport.onmessage(batch, { authInfo: "kept" });
    await transport.send({ jsonrpc: "2.0", id: "2", result: { content: [] } }, { relatedRequestId: "2" });
    await transport.send([{ jsonrpc: "2.0", id: 1, error: { code: -32603, message: "boom" } }]);
    assert.deepEqual(seenIn, [[batch, { authInfo: "kept" }]]);
    assert.deepEqual(sentOut[0], [{ jsonrpc: "2.0", id: "2", result: { content: [] } }, { relatedRequestId: "2" }]);
    assert.deepEqual(recorded.map((e) => [(e as Call).tool_name, (e as Call).status, (e as Call).error_type]),
      [["t2", "ok", undefined], ["t1", "error", "jsonrpc_-32603"]]);

    const errors: unknown[] = [];
    const broken = { send: () => { throw new Error("recorder down"); } } as unknown as SealtrailClient;
    const sent2: unknown[] = [];
    const t2 = { onmessage: (_m: unknown) => undefined, send: async (m: unknown) => void sent2.push(m) };
    recordTransport(t2, { client: broken, onError: (e) => errors.push(e) }, "server");
    t2.onmessage({ jsonrpc: "2.0", id: 9, method: "tools/call", params: { name: "t" } });
    await t2.send({ jsonrpc: "2.0", id: 9, result: {} });
    assert.equal(errors.length, 1);
    assert.deepEqual(sent2, [{ jsonrpc: "2.0", id: 9, result: {} }]);
  });
});
