/**
 * The TypeScript SDK's delivery rate into `sealtrail serve`, with its events in memory and with the
 * write-ahead spool (every send() fsync'd before it resolves, group-committed), beside the Python
 * SDK sending the same events. Not a test: run it by hand and read bench/results/ts_sdk.json.
 *
 *   sdk/typescript/node_modules/.bin/tsx bench/bench_ts_sdk.mts   # SEALTRAIL_BENCH_EVENTS (20000)
 */

import { spawnSync } from "node:child_process";
import { cpus, loadavg, totalmem } from "node:os";
import { writeFileSync } from "node:fs";
import * as path from "node:path";
import { performance } from "node:perf_hooks";

import { events, SealtrailClient } from "../sdk/typescript/src/index.ts";
import { PYTHON, REPO, startServe, tempDir, waitForCheckpoint, type Served } from "../sdk/typescript/test/support/serve.ts";

const N = Number(process.env.SEALTRAIL_BENCH_EVENTS ?? 20000);
const CONCURRENT_SENDERS = 64;

function event(i: number) {
  return events.toolCall({ agent_id: "bench-agent", server_id: "crm", tool_name: "lookup_customer", tool_tier: "read",
    decision: "allow", status: "ok", latency_ms: 12, payload: { arguments: { email: "alice@example.com", n: i }, result: { tier: "gold", note: "x".repeat(120) } },
    subjects: ["user:alice@example.com"] });
}

const pct = (xs: number[], p: number): number => xs.sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

/** N events from CONCURRENT_SENDERS concurrent producers; seconds until close() returned, send() latencies. */
async function typescript(served: Served, spool: boolean): Promise<Record<string, number>> {
  const client = new SealtrailClient(served.url, served.tokens.gateway!, spool ? { spoolDir: tempDir("bench-spool-") } : {});
  const latencies: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CONCURRENT_SENDERS }, async () => {
    while (next < N) {
      const e = event(next++);
      const s = performance.now();
      await client.send(e);
      latencies.push(performance.now() - s);
    }
  }));
  await client.close();
  const seconds = (performance.now() - t0) / 1000;
  return { events: N, seconds: Number(seconds.toFixed(2)), delivered_per_s: Math.round(client.stats.accepted / seconds),
    send_ms_p50: Number(pct(latencies, 50).toFixed(3)), send_ms_p99: Number(pct(latencies, 99).toFixed(3)) };
}

function python(served: Served): Record<string, number> {
  const code = `
import asyncio, sys, time
from sealtrail.sdk import events
from sealtrail.sdk.client import SealtrailClient
async def main():
    n = int(sys.argv[3])
    async with SealtrailClient(sys.argv[1], sys.argv[2]) as c:
        t0 = time.perf_counter()
        for i in range(n):
            await c.send(events.tool_call(agent_id="bench-agent", server_id="crm", tool_name="lookup_customer", tool_tier="read",
                decision="allow", status="ok", latency_ms=12, payload={"arguments": {"email": "alice@example.com", "n": i},
                "result": {"tier": "gold", "note": "x" * 120}}, subjects=["user:alice@example.com"]))
    print(time.perf_counter() - t0, c.stats.accepted)
asyncio.run(main())
`;
  const done = spawnSync(PYTHON, ["-c", code, served.url, served.tokens.gateway!, String(N)], { encoding: "utf8", cwd: REPO });
  if (done.status !== 0) throw new Error(done.stderr);
  const [seconds, accepted] = done.stdout.trim().split(" ").map(Number) as [number, number];
  return { events: N, seconds: Number(seconds.toFixed(2)), delivered_per_s: Math.round(accepted / seconds) };
}

const served = await startServe();
try {
  const auditor = served.createKey("auditor");
  const loadBefore = loadavg()[0]!;
  const result = {
    typescript_memory: await typescript(served, false),
    typescript_spool: await typescript(served, true),
    python_sdk: python(served),
  };
  await waitForCheckpoint(served, auditor, 3 * N, "default", 600_000);
  const report = {
    benchmark: "ts_sdk",
    machine: { nproc: cpus().length, cpu: cpus()[0]?.model ?? "unknown", memory_gib: Number((totalmem() / 2 ** 30).toFixed(1)),
      node: process.version, load_average_1m_before: Number(loadBefore.toFixed(2)) },
    setup: { events_per_run: N, concurrent_senders: CONCURRENT_SENDERS, batch_events: 500, server: "sealtrail serve (embedded, one process)",
      note: "each run: send N events and close(); delivered_per_s counts 202-accepted events; the spool run fsyncs every send() before it resolves (group commit)" },
    result,
  };
  console.log(JSON.stringify(report, null, 1));
  writeFileSync(path.join(REPO, "bench", "results", "ts_sdk.json"), JSON.stringify(report, null, 1) + "\n");
} finally {
  await served.stop();
}
