/**
 * A producer process for the spool crash test. Arguments: url, spool directory, number of events,
 * and a mode: `die-after-delivery` kills itself (SIGKILL) right after ingest accepted its second
 * batch and before the spool records it as delivered; `run` keeps sending until killed from outside
 * or done; `drain` sends nothing and delivers what the spool holds. The gateway token comes from
 * SEALTRAIL_GATEWAY_TOKEN. Prints `durable <event_id>` once an event's send() resolved (it is on
 * disk) and `accepted <n>` after each accepted batch; `done` at the end.
 */

import { writeSync } from "node:fs";

import { events, SealtrailClient } from "../../src/index.ts";

/** One line to stdout with a blocking write: the process may SIGKILL itself right after, and a
 * line still queued in the stream would be lost with it. */
const say = (line: string): void => void writeSync(1, line + "\n");

const [url, spoolDir, countText, mode] = process.argv.slice(2) as [string, string, string, string];
let batches = 0;
const client = new SealtrailClient(url, process.env.SEALTRAIL_GATEWAY_TOKEN ?? "", {
  spoolDir, batchMax: 10, flushIntervalMs: 20,
  onAccepted: (accepted) => {
    batches += 1;
    say(`accepted ${accepted.length}`);
    if (mode === "die-after-delivery" && batches === 2) process.kill(process.pid, "SIGKILL");
  },
});

for (let i = 0; i < Number(countText); i++) {
  const event = events.toolCall({ agent_id: "spool-bot", server_id: "crm", tool_name: "lookup_customer", decision: "allow",
    status: "ok", payload: { arguments: { n: i } }, subjects: ["user:alice@example.com"] });
  await client.send(event);
  say(`durable ${event.event_id}`);
  if (i % 10 === 9) await new Promise((r) => setTimeout(r, 15));
}
await client.close();
say("done");
