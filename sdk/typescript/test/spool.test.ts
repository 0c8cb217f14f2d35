/** The on-disk spool: durable appends, torn tails dropped, acks, segment rotation, the lock, and the Python SDK's format. */

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { appendFileSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";

import { Spool } from "../src/index.ts";
import { encodeRecord } from "../src/spool.ts";
import { PYTHON, REPO, tempDir } from "./support/serve.ts";

const batch = (from: number, n: number) => Array.from({ length: n }, (_, i) => ({ event_id: `e${from + i}`, n: from + i }));
const ids = (events: Record<string, unknown>[]) => events.map((e) => e.event_id);

describe("spool", () => {
  it("delivers batches oldest first, up to maxEvents per peek, and forgets acknowledged ones across reopen", () => {
    const dir = tempDir();
    let spool = new Spool(dir, { maxBytes: 1 << 20 });
    spool.append(batch(0, 3));
    spool.append(batch(3, 2));
    spool.append(batch(5, 4));
    let b = spool.peek(5)!;
    assert.deepEqual(ids(b.events), ["e0", "e1", "e2", "e3", "e4"]);
    spool.ack(b);
    spool.close();
    spool = new Spool(dir, { maxBytes: 1 << 20 });
    b = spool.peek(2)!; // one record is taken whole even past maxEvents
    assert.deepEqual(ids(b.events), ["e5", "e6", "e7", "e8"]);
    spool.ack(b);
    assert.equal(spool.pending, false);
    assert.equal(spool.peek(), null);
    spool.close();
  });

  it("drops a torn record and a torn ack at the end after a crash, keeping everything intact before them", () => {
    const dir = tempDir();
    const spool = new Spool(dir, { maxBytes: 1 << 20 });
    spool.append(batch(0, 2));
    spool.append(batch(2, 2));
    spool.ack(spool.peek(2)!);
    spool.close();
    const seg = path.join(dir, readdirSync(dir).find((f) => f.endsWith(".seg"))!);
    const whole = statSync(seg).size;
    appendFileSync(seg, encodeRecord(batch(4, 1)).subarray(0, 20)); // the crash hit mid-append
    appendFileSync(seg.replace(".seg", ".ack"), Buffer.from([0, 0, 1])); // and mid-ack
    const reopened = new Spool(dir, { maxBytes: 1 << 20 });
    assert.equal(statSync(seg).size, whole);
    assert.deepEqual(ids(reopened.peek()!.events), ["e2", "e3"]);
    reopened.close();
  });

  it("a record with a bad CRC ends the intact part", () => {
    const dir = tempDir();
    const spool = new Spool(dir, { maxBytes: 1 << 20 });
    spool.append(batch(0, 1));
    spool.append(batch(1, 1));
    spool.close();
    const seg = path.join(dir, readdirSync(dir).find((f) => f.endsWith(".seg"))!);
    const data = readFileSync(seg);
    data[data.length - 3]! ^= 0xff;
    writeFileSync(seg, data);
    const reopened = new Spool(dir, { maxBytes: 1 << 20 });
    assert.deepEqual(ids(reopened.peek()!.events), ["e0"]);
    reopened.ack(reopened.peek()!);
    assert.equal(reopened.peek(), null);
    reopened.close();
  });

  it("rotates segments and deletes fully acknowledged ones; refuses past maxBytes", () => {
    const dir = tempDir();
    const spool = new Spool(dir, { maxBytes: 4000, segmentBytes: 300 });
    for (let i = 0; i < 10; i++) spool.append(batch(i * 3, 3));
    assert.ok(readdirSync(dir).filter((f) => f.endsWith(".seg")).length > 3);
    assert.throws(() => { for (let i = 0; i < 100; i++) spool.append(batch(100, 20)); }, { name: "SpoolFullError" });
    const seen: unknown[] = [];
    for (let b = spool.peek(); b !== null; b = spool.peek()) {
      seen.push(...ids(b.events));
      spool.ack(b);
    }
    assert.deepEqual(seen.slice(0, 30), ids(Array.from({ length: 10 }, (_, i) => batch(i * 3, 3)).flat()));
    assert.ok(readdirSync(dir).filter((f) => f.endsWith(".seg")).length <= 1);
    spool.close();
  });

  it("is held by one live process: a second open fails, a lock left by a dead process is taken over", () => {
    const dir = tempDir();
    const spool = new Spool(dir, { maxBytes: 1 << 20 });
    const other = spawnSync(process.execPath, ["--import", "tsx", "-e",
      `import { Spool } from ${JSON.stringify(path.resolve("src/spool.ts"))}; try { new Spool(${JSON.stringify(dir)}, { maxBytes: 1000 }); console.log("opened"); } catch (e) { console.log(e.name); }`],
      { encoding: "utf8" });
    assert.equal(other.stdout.trim(), "SpoolLockedError", other.stderr);
    spool.close();
    writeFileSync(path.join(dir, "LOCK"), "999999999\n"); // no such process
    new Spool(dir, { maxBytes: 1 << 20 }).close();
  });

  it("reads a spool the Python SDK wrote, and the Python SDK reads this one's records", () => {
    const dir = tempDir();
    const py = spawnSync(PYTHON, ["-c", `
import sys
from pathlib import Path
from sealtrail.sdk.spool import Spool
s = Spool(Path(sys.argv[1]), max_bytes=1 << 20)
s.append([{"event_id": "p0", "x": "\u00e9"}])
s.append([{"event_id": "p1"}, {"event_id": "p2"}])
s.ack(s.peek())
s.close()
`, dir], { encoding: "utf8", cwd: REPO });
    assert.equal(py.status, 0, py.stderr);
    const spool = new Spool(dir, { maxBytes: 1 << 20 });
    assert.deepEqual(spool.peek()!.events, [{ event_id: "p1" }, { event_id: "p2" }]);
    spool.append([{ event_id: "t0", x: "\u00fc" }]);
    spool.close();
    const back = spawnSync(PYTHON, ["-c", `
import sys, json
from pathlib import Path
from sealtrail.sdk.spool import Spool
s = Spool(Path(sys.argv[1]), max_bytes=1 << 20)
out = []
while (b := s.peek()) is not None:
    out += b.events
    s.ack(b)
print(json.dumps(out))
`, dir], { encoding: "utf8", cwd: REPO });
    assert.equal(back.status, 0, back.stderr);
    assert.deepEqual(JSON.parse(back.stdout), [{ event_id: "p1" }, { event_id: "p2" }, { event_id: "t0", x: "\u00fc" }]);
  });
});
