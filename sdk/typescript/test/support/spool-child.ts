/**
 * A producer process for the spool crash test. Arguments: url, spool directory, number of events,
 * and a mode: `die-after-delivery` kills itself (SIGKILL) right after ingest accepted its second
 * batch and before the spool records it as delivered; `run` keeps sending until killed from outside
 * or done; `drain` sends nothing and delivers what the spool holds. The gateway token comes from
 * SEALTRAIL_GATEWAY_TOKEN. Prints `durable <event_id>` once an event's send() resolved (it is on
 * disk) and `accepted <n>` after each accepted batch; `done` at the end.
 */

import { events, SealtrailClient } from "../../src/index.ts";

const [url, spoolDir, countText, mode] = process.argv.slice(2) as [string, string, string, string];
let batches = 0;
const client = new SealtrailClient(url, process.env.SEALTRAIL_GATEWAY_TOKEN ?? "", {
  spoolDir, batchMax: 10, flushIntervalMs: 20,
  onAccepted: (accepted) => {
    batches += 1;
    process.stdout.write(`accepted ${accepted.length}\n`);
    if (mode === "die-after-delivery" && batches === 2) process.kill(process.pid, "SIGKILL");
  },
});

for (let i = 0; i < Number(countText); i++) {
  const event = events.toolCall({ agent_id: "spool-bot", server_id: "crm", tool_name: "lookup_customer", decision: "allow",
    status: "ok", payload: { arguments: { n: i } }, subjects: ["user:alice@example.com"] });
  await client.send(event);
  process.stdout.write(`durable ${event.event_id}\n`);
  if (i % 10 === 9) await new Promise((r) => setTimeout(r, 15));
}
await client.close();
process.stdout.write("done\n");
