/** The builders make events that the v1 JSON Schemas accept, in the shape the Python SDK makes them. */

import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";

import { Ajv2020 } from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";

import { events, timestamp, toolDefHash, uuid7 } from "../src/index.ts";
import { REPO } from "./support/serve.ts";

const SCHEMAS = path.join(REPO, "schemas");
const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);
for (const file of readdirSync(SCHEMAS).filter((f) => f.endsWith(".schema.json"))) {
  ajv.addSchema(JSON.parse(readFileSync(path.join(SCHEMAS, file), "utf8")) as object);
}

function valid(event: object): void {
  const type = (event as { type: string }).type;
  const validate = ajv.getSchema(`https://sealtrail.dev/schemas/${type}/v1`);
  assert.ok(validate, `no schema for ${type}`);
  assert.ok(validate(event), `${type}: ${JSON.stringify(validate.errors)}`);
}

const DEF = toolDefHash({ name: "lookup_customer", inputSchema: { type: "object" } });

describe("event builders", () => {
  it("uuid7 makes lowercase version-7 ids whose first 48 bits are the time", () => {
    const ms = 1_765_000_000_123;
    const id = uuid7(ms);
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(parseInt(id.replace(/-/g, "").slice(0, 12), 16), ms);
    assert.equal(new Set(Array.from({ length: 1000 }, () => uuid7())).size, 1000);
  });

  it("timestamps are RFC 3339 UTC with Z", () => {
    assert.equal(timestamp(new Date(Date.UTC(2026, 11, 7, 16, 0, 0, 5))), "2026-12-07T16:00:00.005Z");
    assert.throws(() => timestamp(new Date("nope")), { name: "InvalidInputError" });
  });

  it("every gateway builder, with every optional field, passes its JSON Schema", () => {
    const common = { payload: { note: "free text" }, subjects: ["user:alice@example.com"] };
    const all = [
      events.toolCall({ agent_id: "a", server_id: "crm", tool_name: "lookup_customer", decision: "allow", status: "ok",
        session_id: "s", tool_tier: "read", tool_def_hash: DEF, policy_id: "p", policy_version: "3", error_type: "none",
        latency_ms: 12, cost_micros: 1500, currency: "EUR", trace_id: "4bf92f3577b34da6a3ce929d0e0e4736",
        span_id: "00f067aa0ba902b7", ...common }),
      events.approval({ approval_id: "ap-1", call_event_id: uuid7(), decision: "granted", agent_id: "a", session_id: "s",
        server_id: "crm", tool_name: "t", policy_id: "p", policy_version: "1", wait_ms: 4000,
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736", span_id: "00f067aa0ba902b7", ...common }),
      events.rateLimit({ limit_id: "l", window_s: 60, limit: 10, observed: 11, scope: "agent", agent_id: "a",
        session_id: "s", server_id: "crm", tool_name: "t", ...common }),
      events.healthCheck({ server_id: "crm", status: "degraded", latency_ms: 900, error_type: "timeout", payload: { x: 1 } }),
      events.toolList({ server_id: "crm", tools: [["lookup_customer", DEF], { name: "update_customer", def_hash: DEF }],
        agent_id: "a", session_id: "s", payload: { x: 1 } }),
      events.serverStatus({ server_id: "crm", state: "inactive", payload: { reason: "maintenance" } }),
      events.credentialRotation({ server_id: "crm", credential_id: "crm-oauth", reason: "scheduled",
        expires_at: new Date(Date.UTC(2027, 0, 1)), payload: { x: 1 } }),
    ];
    for (const e of all) valid(e);
    assert.deepEqual(all.map((e) => e.type), ["tool_call", "approval", "rate_limit", "health_check", "tool_list", "server_status", "credential_rotation"]);
    assert.deepEqual((all[4] as events.ToolListEvent).tools[0], { name: "lookup_customer", def_hash: DEF });
    assert.equal((all[6] as events.CredentialRotationEvent).expires_at, "2027-01-01T00:00:00.000Z");
  });

  it("the minimal builders pass too, omit absent fields and never write null", () => {
    const e = events.toolCall({ agent_id: "a", server_id: "s", tool_name: "t", decision: "deny", status: "denied",
      session_id: undefined, occurred_at: "2026-12-07T16:00:00Z", event_id: "01890000-0000-7000-8000-000000000001" });
    valid(e);
    assert.deepEqual(e, { event_id: "01890000-0000-7000-8000-000000000001", type: "tool_call", occurred_at: "2026-12-07T16:00:00Z",
      agent_id: "a", server_id: "s", tool_name: "t", decision: "deny", status: "denied" });
    valid(events.approval({ approval_id: "x", call_event_id: uuid7(), decision: "refused" }));
    valid(events.rateLimit({ limit_id: "l", window_s: 1, limit: 1, observed: 2 }));
    valid(events.healthCheck({ server_id: "s", status: "healthy" }));
    valid(events.toolList({ server_id: "s", tools: [] }));
    valid(events.serverStatus({ server_id: "s", state: "active" }));
    valid(events.credentialRotation({ server_id: "s", credential_id: "c" }));
  });

  it("the schemas' own valid examples pass the validator used here (so it reads the schemas right)", () => {
    let checked = 0;
    for (const type of readdirSync(path.join(SCHEMAS, "examples"))) {
      const dir = path.join(SCHEMAS, "examples", type, "valid");
      for (const file of readdirSync(dir).filter((f) => f.endsWith(".json"))) {
        const example = JSON.parse(readFileSync(path.join(dir, file), "utf8")) as object;
        const validate = ajv.getSchema(`https://sealtrail.dev/schemas/${type}/v1`)!;
        assert.ok(validate(example), `${type}/${file}: ${JSON.stringify(validate.errors)}`);
        checked++;
      }
    }
    assert.ok(checked > 10);
  });
});
