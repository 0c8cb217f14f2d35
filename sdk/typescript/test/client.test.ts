/**
 * The client's delivery rules against an HTTP server that answers as told (outages, Retry-After,
 * refused keys, oversized batches): same event ids on every retry, Retry-After honoured, the token
 * never in a message. The live `sealtrail serve` tests are in serve.test.ts.
 */

import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { after, describe, it } from "node:test";

import { Backoff, DeliveryError, events, parseRetryAfter, SealtrailClient, type Rejected } from "../src/index.ts";
import { freePort, tempDir } from "./support/serve.ts";

const TOKEN = "st_0123456789abcdef_SECRETsecretSECRETsecret";
type Reply = { status: number; headers?: Record<string, string>; body?: unknown };

interface Scripted {
  url: string;
  bodies: { at: number; ids: string[]; auth: string }[];
  server: Server;
}

async function scripted(answer: (n: number, ids: string[]) => Reply): Promise<Scripted> {
  const bodies: Scripted["bodies"] = [];
  const server = createServer((req: IncomingMessage, res) => {
    let raw = "";
    req.on("data", (c: Buffer) => (raw += c.toString("utf8")));
    req.on("end", () => {
      const ids = (JSON.parse(raw) as { events: { event_id: string }[] }).events.map((e) => e.event_id);
      bodies.push({ at: Date.now(), ids, auth: req.headers.authorization ?? "" });
      const reply = answer(bodies.length, ids);
      const body = reply.body ?? (reply.status === 202 ? { accepted: ids.map((id) => ({ event_id: id, log: "default", receipt: "r" })), rejected: [] } : { title: "x" });
      res.writeHead(reply.status, { "content-type": reply.status >= 400 ? "application/problem+json" : "application/json", ...reply.headers });
      res.end(JSON.stringify(body));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, bodies, server };
}

const servers: Server[] = [];
after(() => servers.forEach((s) => s.close()));
const fast = new Backoff({ baseS: 0.01, capS: 0.05 });
const call = (i: number) => events.toolCall({ agent_id: "a", server_id: "s", tool_name: "t", decision: "allow", status: "ok", payload: { i } });

describe("backoff", () => {
  it("grows exponentially within the cap, with jitter, and never undercuts Retry-After (capped at 300 s)", () => {
    const b = new Backoff({ baseS: 0.2, factor: 2, capS: 30, jitter: 0.5 });
    assert.equal(b.delay(0, null, () => 0), 0.2);
    assert.equal(b.delay(3, null, () => 0), 1.6);
    assert.equal(b.delay(3, null, () => 1), 0.8);
    assert.equal(b.delay(20, null, () => 0), 30);
    assert.equal(b.delay(0, 7, () => 0), 7);
    assert.equal(b.delay(0, 10_000, () => 0), 300);
  });

  it("reads Retry-After as seconds or an HTTP date, and ignores anything else", () => {
    const now = new Date(Date.UTC(2026, 11, 7, 12, 0, 0));
    assert.equal(parseRetryAfter("3"), 3);
    assert.equal(parseRetryAfter("Mon, 07 Dec 2026 12:00:30 GMT", now), 30);
    assert.equal(parseRetryAfter("Mon, 07 Dec 2026 11:00:00 GMT", now), 0);
    assert.equal(parseRetryAfter("soon"), null);
    assert.equal(parseRetryAfter("-1"), null);
    assert.equal(parseRetryAfter(null), null);
  });
});

describe("client against a scripted ingest", () => {
  it("retries a batch after 503 and 429 with the same event ids, waiting at least Retry-After", async () => {
    const s = await scripted((n) => (n === 1 ? { status: 503, headers: { "retry-after": "1" } } : n === 2 ? { status: 429, headers: { "retry-after": "0" } } : { status: 202 }));
    servers.push(s.server);
    const accepted: string[] = [];
    const client = new SealtrailClient(s.url, TOKEN, { backoff: fast, onAccepted: (a) => accepted.push(...a.map((x) => x.event_id)) });
    const sent = [call(1), call(2), call(3)];
    for (const e of sent) await client.send(e);
    await client.close();
    assert.equal(s.bodies.length, 3);
    for (const b of s.bodies) assert.deepEqual(b.ids, sent.map((e) => e.event_id));
    assert.ok(s.bodies[1]!.at - s.bodies[0]!.at >= 950, `waited ${s.bodies[1]!.at - s.bodies[0]!.at} ms`);
    assert.deepEqual(accepted, sent.map((e) => e.event_id));
    assert.equal(client.stats.retries, 2);
    assert.equal(s.bodies[0]!.auth, `Bearer ${TOKEN}`);
  });

  it("batches up to batchMax events and splits a batch answered 413", async () => {
    const s = await scripted((_, ids) => (ids.length > 2 ? { status: 413 } : { status: 202 }));
    servers.push(s.server);
    const client = new SealtrailClient(s.url, TOKEN, { batchMax: 5, backoff: fast });
    const sent = Array.from({ length: 7 }, (_, i) => call(i));
    for (const e of sent) await client.send(e);
    await client.close();
    const delivered = s.bodies.filter((b) => b.ids.length <= 2).flatMap((b) => b.ids);
    assert.deepEqual(delivered, sent.map((e) => e.event_id));
    assert.equal(s.bodies[0]!.ids.length, 5);
  });

  it("reports 422 rejections and a 400 batch through onRejected, without retrying", async () => {
    const s = await scripted((n, ids) => (n === 1
      ? { status: 422, body: { accepted: [], rejected: [{ index: 0, event_id: ids[0], type: "https://sealtrail.dev/problems/clock-skew", title: "Clock skew", detail: "too old", pointer: "/events/0/occurred_at" }] } }
      : { status: 400, body: { type: "about:blank", title: "Bad Request", detail: `not a batch (${TOKEN})` } }));
    servers.push(s.server);
    const rejected: Rejected[] = [];
    const client = new SealtrailClient(s.url, TOKEN, { backoff: fast, onRejected: (r) => rejected.push(...r) });
    await client.send(call(1));
    await client.flush();
    await client.send(call(2));
    await client.close();
    assert.equal(s.bodies.length, 2);
    assert.equal(rejected[0]!.pointer, "/events/0/occurred_at");
    assert.equal(rejected[1]!.title, "Bad Request");
    assert.ok(!rejected[1]!.detail.includes("SECRET"), rejected[1]!.detail);
  });

  it("a refused key is retried, warned about and finally named in DeliveryError, never showing the token", async () => {
    const s = await scripted(() => ({ status: 401, body: { title: "Unauthorized", detail: `unknown key ${TOKEN}` } }));
    servers.push(s.server);
    const warnings: string[] = [];
    const client = new SealtrailClient(s.url, TOKEN, { backoff: fast, attempts: 2, onWarning: (w) => warnings.push(w) });
    await client.send(call(1));
    const err = await client.close().then(() => null, (e: unknown) => e);
    assert.ok(err instanceof DeliveryError);
    assert.equal(err.status, 401);
    assert.match(err.message, /HTTP 401 Unauthorized.*refused the API key/);
    for (const text of [err.message, err.detail, ...warnings, String(client), JSON.stringify(client.stats)]) {
      assert.ok(!text.includes("SECRET"), text);
    }
    assert.ok(warnings.length >= 1);
    assert.ok(s.bodies.length >= 2);
  });

  it("refuses an event without a JSON form at send(), alone", async () => {
    const s = await scripted(() => ({ status: 202 }));
    servers.push(s.server);
    const client = new SealtrailClient(s.url, TOKEN, { spoolDir: tempDir() });
    const good = call(1);
    await assert.rejects(client.send({ ...call(2), payload: { n: 1n } }), { name: "InvalidInputError" });
    await client.send(good);
    await client.close();
    assert.deepEqual(s.bodies.flatMap((b) => b.ids), [good.event_id]);
  });

  it("a connection the server drops is tried again at once, without spending an attempt", async () => {
    let dropped = false;
    const server = createServer((req, res) => {
      let raw = "";
      req.on("data", (c: Buffer) => (raw += c.toString("utf8")));
      req.on("end", () => {
        if (!dropped) {
          dropped = true;
          req.socket.destroy(); // as an idle keep-alive connection closed by the server looks on reuse
          return;
        }
        const ids = (JSON.parse(raw) as { events: { event_id: string }[] }).events.map((e) => e.event_id);
        res.writeHead(202, { "content-type": "application/json" });
        res.end(JSON.stringify({ accepted: ids.map((id) => ({ event_id: id, log: "default", receipt: "r" })), rejected: [] }));
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    servers.push(server);
    const client = new SealtrailClient(`http://127.0.0.1:${(server.address() as { port: number }).port}`, TOKEN, { attempts: 1 });
    await client.send(call(1));
    await client.close();
    assert.ok(dropped);
    assert.equal(client.stats.accepted, 1);
    assert.equal(client.stats.retries, 0);
  });

  it("names a connection error when nothing listens", async () => {
    const client = new SealtrailClient(`http://127.0.0.1:${await freePort()}`, TOKEN, { backoff: fast, attempts: 2 });
    await client.send(call(1));
    await assert.rejects(client.close(), (e: unknown) => e instanceof DeliveryError && e.status === null && /ECONNREFUSED/.test(e.message));
  });

  it("with a spool, send() is durable before delivery; an outage keeps events on disk for the next start", async () => {
    const dir = tempDir();
    const down = new SealtrailClient(`http://127.0.0.1:${await freePort()}`, TOKEN, { backoff: fast, attempts: 1, spoolDir: dir });
    const sent = Array.from({ length: 4 }, (_, i) => call(i));
    await Promise.all(sent.map((e) => down.send(e)));
    assert.equal(down.spooled, true);
    await down.close(); // no error: the events are safe in the spool
    const s = await scripted(() => ({ status: 202 }));
    servers.push(s.server);
    const up = new SealtrailClient(s.url, TOKEN, { backoff: fast, spoolDir: dir });
    await up.flush();
    assert.equal(up.spooled, false);
    await up.close();
    assert.deepEqual(s.bodies.flatMap((b) => b.ids), sent.map((e) => e.event_id));
  });
});
