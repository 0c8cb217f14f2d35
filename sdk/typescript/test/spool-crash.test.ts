/**
 * The write-ahead spool across crashes, against a live `sealtrail serve`: a producer killed right
 * after a batch was delivered but before the spool recorded it, and another killed from outside
 * mid-delivery, lose nothing; after a restart every event whose send() had resolved is in the log
 * exactly once (resent batches carry the same event ids).
 */

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";

import { logEntries, SEALTRAIL, startServe, tempDir, waitForCheckpoint, type Served } from "./support/serve.ts";

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), "support", "spool-child.ts");
let served: Served;
let auditor: string;
before(async () => {
  served = await startServe();
  auditor = served.createKey("auditor");
});
after(async () => served?.stop());

interface Run {
  durable: string[];
  accepted: number;
  signal: string | null;
  code: number | null;
  stderr: string;
}

/** Run the producer; `killWhen` may SIGKILL it from outside once its output satisfies a condition. */
function produce(spool: string, count: number, mode: string, killWhen?: (run: Run) => boolean): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", CHILD, served.url, spool, String(count), mode], {
      env: { ...process.env, SEALTRAIL_GATEWAY_TOKEN: served.tokens.gateway }, stdio: ["ignore", "pipe", "pipe"],
    });
    const run: Run = { durable: [], accepted: 0, signal: null, code: null, stderr: "" };
    let buffered = "";
    child.stdout.on("data", (chunk: Buffer) => {
      buffered += chunk.toString("utf8");
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      for (const line of lines) {
        if (line.startsWith("durable ")) run.durable.push(line.slice(8));
        if (line.startsWith("accepted ")) run.accepted += Number(line.slice(9));
      }
      if (killWhen?.(run) && child.exitCode === null) child.kill("SIGKILL");
    });
    child.stderr.on("data", (chunk: Buffer) => (run.stderr += chunk.toString("utf8")));
    // "close", not "exit": a process can exit before the parent has read all it wrote to its pipes.
    child.on("close", (code, signal) => Object.assign(run, { code, signal }) && resolve(run));
  });
}

describe("write-ahead spool across crashes", () => {
  it("delivers everything after restarts, each event once in the log", async () => {
    const spool = tempDir("sealtrail-spool-");
    const first = await produce(spool, 60, "die-after-delivery");
    assert.equal(first.signal, "SIGKILL", `the producer was to die after its second batch: ${first.stderr}`);
    // Its two batches may be partial (the flush interval can cut them), so they may hold every event
    // it printed as durable; the batch it died after is delivered again below either way.
    assert.ok(first.accepted >= 2, `accepted ${first.accepted}, durable ${first.durable.length}`);

    const second = await produce(spool, 600, "run", (run) => run.accepted >= 30 && run.durable.length >= 60);
    assert.equal(second.signal, "SIGKILL", `the second producer was to be killed mid-delivery: ${second.stderr}`);

    const third = await produce(spool, 0, "drain");
    assert.equal(third.code, 0, third.stderr);

    const durable = [...first.durable, ...second.durable];
    const total = first.accepted + second.accepted + third.accepted;
    assert.ok(total > durable.length, `some batch was delivered twice (${total} acceptances for ${durable.length} events)`);
    await waitForCheckpoint(served, auditor, durable.length);
    const logged = (await logEntries(served, auditor)).filter((e) => e.agent_id === "spool-bot").map((e) => e.event_id as string);
    assert.equal(new Set(logged).size, logged.length, "an event is in the log twice");
    const missing = durable.filter((id) => !logged.includes(id));
    assert.deepEqual(missing, [], `${missing.length} durable events are not in the log`);
    // Events sent but not yet durable when a producer died may or may not be there; nothing else is.
    assert.ok(logged.length >= durable.length && logged.length <= first.durable.length + 10 + second.durable.length + 10);
    // and Sealtrail's own verifier finds the log whole
    const verify = spawnSync(SEALTRAIL, ["verify", "--url", served.url, "--log", "default"], {
      encoding: "utf8", timeout: 300_000, env: { ...process.env, SEALTRAIL_TOKEN: auditor } });
    assert.equal(verify.status, 0, `sealtrail verify: ${verify.stdout}\n${verify.stderr}`);
  });
});
