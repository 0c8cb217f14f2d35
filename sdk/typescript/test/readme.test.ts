/** The TypeScript examples of README.md run as written against a live `sealtrail serve`. */

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";

import { events, SealtrailClient } from "../src/index.ts";
import { startServe, waitForCheckpoint, type Served } from "./support/serve.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const BLOCKS = [...readFileSync(path.join(ROOT, "README.md"), "utf8").matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
let served: Served;
let auditor: string;
before(async () => {
  served = await startServe();
  auditor = served.createKey("auditor");
});
after(async () => served?.stop());

/** Run one README block as a module, with the package imports pointed at the sources and the port at `served`. */
function run(block: string, replace: [string, string][] = []): string {
  let code = block.replaceAll("\"@sealtrail/sdk/mcp\"", JSON.stringify(path.join(ROOT, "src", "mcp.ts")))
    .replaceAll("\"@sealtrail/sdk\"", JSON.stringify(path.join(ROOT, "src", "index.ts")))
    .replaceAll("http://127.0.0.1:8300", served.url);
  for (const [from, to] of replace) {
    assert.ok(code.includes(from), `the README block no longer holds ${from}`);
    code = code.replace(from, to);
  }
  const file = path.join(ROOT, "test", `.readme-${process.pid}.mts`);
  writeFileSync(file, code);
  try {
    const done = spawnSync(process.execPath, ["--import", "tsx", file], { encoding: "utf8", timeout: 60_000,
      env: { ...process.env, GW: served.tokens.gateway, SEALTRAIL_TOKEN: auditor } });
    assert.equal(done.status, 0, `README block failed:\n${code}\n${done.stderr}`);
    return done.stdout;
  } finally {
    rmSync(file, { force: true });
  }
}

describe("README examples", () => {
  it("has the four examples", () => assert.equal(BLOCKS.length, 4));

  it("sends an event", () => {
    run(BLOCKS[0]!);
  });

  it("checks the receipts of what it sent", () => {
    const out = run(BLOCKS[1]!, [["// ... send, close ...", "await client.send(events.healthCheck({ server_id: \"crm\", status: \"healthy\" }));\nawait client.close();"],
      ["import { receiptVerifiers,", "import { events, receiptVerifiers,"]]);
    assert.match(out, /^[0-9a-f-]{36} default blake3:[0-9a-f]{64} /);
  });

  it("checks an event's tlog-proof offline", async () => {
    const client = new SealtrailClient(served.url, served.tokens.gateway!);
    await client.send(events.toolCall({ event_id: "01a20d00-0000-7000-8000-000000000001", agent_id: "support-bot", server_id: "crm",
      tool_name: "lookup_customer", tool_tier: "read", decision: "allow", status: "ok" }));
    await client.close();
    await waitForCheckpoint(served, auditor, 3);
    assert.match(run(BLOCKS[2]!), /^sealtrail\S* size 3 cosigned at \d+\n$/);
  });
});
