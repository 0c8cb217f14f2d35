/**
 * A real MCP server on the official TypeScript SDK, over stdio, for the MCP integration test.
 * With SEALTRAIL_URL and SEALTRAIL_GATEWAY_TOKEN set it is wrapped by `recordServer`; without, it
 * runs bare (the test compares the answers of both). It flushes its events when stdin closes.
 */

import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import * as z from "zod";

import { SealtrailClient } from "../../src/index.ts";
import { recordServer } from "../../src/mcp.ts";

const server = new McpServer({ name: "crm", version: "1.0.0" });

server.registerTool("lookup_customer", {
  description: "Find a customer by e-mail", inputSchema: { email: z.string() }, annotations: { readOnlyHint: true },
}, async ({ email }) => ({ content: [{ type: "text", text: `customer ${email}: tier gold` }] }));

server.registerTool("update_customer", {
  description: "Change a customer's tier", inputSchema: { email: z.string(), tier: z.string() },
  annotations: { readOnlyHint: false, destructiveHint: false },
}, async ({ email, tier }) => {
  await new Promise((r) => setTimeout(r, 25));
  return { content: [{ type: "text", text: `${email} is now ${tier}` }], structuredContent: undefined };
});

server.registerTool("delete_customer", {
  description: "Delete a customer", inputSchema: { email: z.string() }, annotations: { destructiveHint: true },
}, async ({ email }) => {
  throw new Error(`refusing to delete ${email}`);
});

const url = process.env.SEALTRAIL_URL;
const sealtrail = url ? new SealtrailClient(url, process.env.SEALTRAIL_GATEWAY_TOKEN ?? "", { flushIntervalMs: 100 }) : null;
if (sealtrail) {
  recordServer(server, {
    client: sealtrail, subjects: ({ arguments: args }) => {
      const email = (args as { email?: unknown }).email;
      return typeof email === "string" ? [`user:${email}`] : undefined;
    },
    onError: (e) => process.stderr.write(`sealtrail: ${String(e)}\n`),
  });
}

let closing = false;
async function shutdown(): Promise<void> {
  if (closing) return;
  closing = true;
  try {
    await sealtrail?.close();
  } finally {
    process.exit(0);
  }
}
process.stdin.on("end", () => void shutdown());
process.on("SIGTERM", () => void shutdown());

await server.connect(new StdioServerTransport());
