/**
 * Against a live `sealtrail serve`: events of every gateway type delivered by the client, their
 * receipts verified under the published receipt key, the signed and cosigned checkpoint verified,
 * and a downloaded tlog-proof verified over the exact entry bytes; resent events are logged once.
 */

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import {
  checkConsistency, events, parseTlogProof, receiptVerifiers, SealtrailClient, toolDefHash, TrustedKeys, uuid7, verifyReceipt,
  verifyTlogProofTrusted, type Accepted,
} from "../src/index.ts";
import { getJson, logEntries, startServe, waitForCheckpoint, type Served } from "./support/serve.ts";

let served: Served;
let auditor: string;
before(async () => {
  served = await startServe();
  auditor = served.createKey("auditor");
});
after(async () => served?.stop());

type Keys = { keys: { purpose: string; vkey: string; not_before: number | null; not_after: number | null }[] };

describe("against sealtrail serve", () => {
  it("delivers every gateway event type; each receipt verifies and the log holds each event once", async () => {
    const accepted: Accepted[] = [];
    const client = new SealtrailClient(served.url, served.tokens.gateway!, { batchMax: 4, onAccepted: (a) => accepted.push(...a) });
    const def = toolDefHash({ name: "lookup_customer" });
    const sent = [
      ...Array.from({ length: 9 }, (_, i) => events.toolCall({ agent_id: "support-bot", server_id: "crm", tool_name: "lookup_customer",
        tool_tier: "read", decision: "allow", status: "ok", latency_ms: i, payload: { arguments: { email: "alice@example.com", n: i } },
        subjects: ["user:alice@example.com"] })),
      events.approval({ approval_id: "ap-1", call_event_id: uuid7(), decision: "granted", payload: { approver: "bob" } }),
      events.rateLimit({ limit_id: "per-agent", window_s: 60, limit: 100, observed: 101, scope: "agent", agent_id: "support-bot" }),
      events.healthCheck({ server_id: "crm", status: "healthy", latency_ms: 3 }),
      events.toolList({ server_id: "crm", tools: [["lookup_customer", def]] }),
      events.serverStatus({ server_id: "crm", state: "active" }),
      events.credentialRotation({ server_id: "crm", credential_id: "crm-oauth", reason: "scheduled" }),
    ];
    for (const e of sent) await client.send(e);
    await client.close();
    assert.deepEqual(accepted.map((a) => a.event_id), sent.map((e) => e.event_id));
    assert.equal(client.stats.rejected, 0);

    const verifiers = receiptVerifiers(await getJson<Keys>(`${served.url}/v1/keys`, auditor));
    for (const a of accepted) {
      const promise = verifyReceipt(a.receipt, verifiers);
      assert.equal(promise.eventId, a.event_id);
      assert.equal(promise.log, a.log);
      assert.match(promise.digest, /^blake3:[0-9a-f]{64}$/);
    }

    // The same events once more (a retry after a lost answer): accepted again, logged once.
    const again = new SealtrailClient(served.url, served.tokens.gateway!);
    for (const e of sent.slice(0, 5)) await again.send(e);
    await again.close();
    await waitForCheckpoint(served, auditor, sent.length);
    const entries = await logEntries(served, auditor);
    assert.deepEqual(entries.map((e) => e.event_id).sort(), sent.map((e) => e.event_id).sort());
  });

  it("the checkpoint verifies under the published log and cosigner keys, and a tlog-proof over its entry bytes", async () => {
    const keys = await getJson<Keys>(`${served.url}/v1/keys`, auditor);
    const trusted = TrustedKeys.fromPublished(keys);
    const note = await (await fetch(`${served.url}/v1/logs/default/checkpoint`, { headers: { authorization: `Bearer ${auditor}` } })).text();
    const checkpoint = trusted.verifyCheckpoint(note);
    assert.ok(checkpoint.checkpoint.size >= 15n);
    assert.ok(checkpoint.timestamp !== null && Number(checkpoint.timestamp) > Date.now() / 1000 - 3600);
    assert.deepEqual(checkpoint.cosigners.length, 1);

    const entries = await logEntries(served, auditor);
    const target = entries[3]!.event_id as string;
    // the gateway key reads the proofs of its own events
    const resp = await fetch(`${served.url}/v1/events/${target}/tlog-proof`, { headers: { authorization: `Bearer ${served.tokens.gateway}` } });
    assert.equal(resp.status, 200);
    const file = await resp.text();
    const proof = parseTlogProof(file);
    const page = await getJson<{ entries: { entry: string }[] }>(`${served.url}/v1/logs/default/entries?start=${proof.index}&end=${proof.index + 1n}`, auditor);
    const entry = new Uint8Array(Buffer.from(page.entries[0]!.entry, "base64"));
    const verified = verifyTlogProofTrusted(file, entry, trusted);
    assert.equal(verified.checkpoint.origin, checkpoint.checkpoint.origin);
    const other = new Uint8Array(Buffer.from(JSON.stringify(entries[4])));
    assert.throws(() => verifyTlogProofTrusted(file, other, trusted), { name: "InvalidProofError" });
  });

  it("a later checkpoint is shown to extend an earlier one by the served consistency proof", async () => {
    const trusted = TrustedKeys.fromPublished(await getJson<Keys>(`${served.url}/v1/keys`, auditor));
    const checkpoint = async () => trusted.verifyCheckpoint(await (await fetch(`${served.url}/v1/logs/default/checkpoint`,
      { headers: { authorization: `Bearer ${auditor}` } })).text()).checkpoint;
    const older = await checkpoint();
    const client = new SealtrailClient(served.url, served.tokens.gateway!);
    for (let i = 0; i < 7; i++) await client.send(events.healthCheck({ server_id: "crm", status: "healthy", latency_ms: i }));
    await client.close();
    await waitForCheckpoint(served, auditor, Number(older.size) + 7);
    const newer = await checkpoint();
    const body = await getJson<{ proof: string[] }>(`${served.url}/v1/logs/default/proof/consistency?from=${older.size}&to=${newer.size}`, auditor);
    const proof = body.proof.map((h) => new Uint8Array(Buffer.from(h, "base64")));
    checkConsistency(older, newer, proof);
    assert.throws(() => checkConsistency(older, { ...newer, root: older.root }, proof), { name: "InconsistentCheckpointError" });
  });

  it("a wrong token is refused with a clear error that does not show it", async () => {
    const bad = "st_0000000000000000_notARealTokenButSecretAnyway";
    const client = new SealtrailClient(served.url, bad, { attempts: 1 });
    await client.send(events.healthCheck({ server_id: "crm", status: "healthy" }));
    await assert.rejects(client.close(), (e: Error & { status?: number }) => {
      assert.equal(e.status, 401);
      assert.ok(!e.message.includes("notARealToken"), e.message);
      assert.match(e.message, /HTTP 401/);
      return true;
    });
  });
});
