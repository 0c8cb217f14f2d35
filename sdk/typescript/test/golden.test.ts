/**
 * Golden data written by Sealtrail's Python core (golden/make_golden.py, deterministic): the
 * TypeScript verifiers accept exactly what the Python core signs and refuse every alteration.
 */

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

import {
  canonicalJson, checkConsistency, CosignatureVerifier, Ed25519Verifier, parseCheckpoint, parseNote, parseTlogProof,
  toolDefHash, TrustedKeys, verifyReceipt, verifyTlogProof, verifyTlogProofTrusted,
} from "../src/index.ts";
import { b64encode } from "../src/encoding.ts";
import { PYTHON, REPO } from "./support/serve.ts";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SCRIPT = path.join(HERE, "golden", "make_golden.py");
const TEXT = readFileSync(path.join(HERE, "golden", "golden.json"), "utf8");

interface Golden {
  receipts: {
    vkey: string; other_vkey: string; log: string; foreign: string;
    batches: Record<string, { events: [string, string][]; receipts: string[] }>;
    v1: { receipt: string; event_id: string; digest: string; time_ms: number };
  };
  log: {
    origin: string; log_vkey: string; cosigner_vkey: string; entries: string[]; roots: Record<string, string>;
    checkpoints: Record<string, string>; proofs: { index: number; size: number; file: string }[];
    consistency: { from: number; to: number; proof: string[] }[]; extra_proof: string;
  };
  canonical: { value: unknown; jcs: string; def_hash: string }[];
}

const golden = JSON.parse(TEXT) as Golden;
const b64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "base64"));

/** Flip one base64 character of the line that starts with `prefix` (a proof hash or a signature). */
function flipLine(text: string, lineNo: number): string {
  const lines = text.split("\n");
  const line = lines[lineNo]!;
  const pos = line.length - 3;
  lines[lineNo] = line.slice(0, pos) + (line[pos] === "A" ? "B" : "A") + line.slice(pos + 1);
  return lines.join("\n");
}

describe("golden data from the Python core", () => {
  it("is what make_golden.py writes today", () => {
    const done = spawnSync(PYTHON, [SCRIPT], { cwd: REPO, encoding: "utf8", timeout: 120_000 });
    assert.equal(done.status, 0, `make_golden.py failed: ${done.stderr}`);
    assert.equal(done.stdout, TEXT, "golden.json is stale: regenerate it with make_golden.py");
  });

  it("receipts of every batch size verify and promise their event, digest, log and time", () => {
    const verifier = Ed25519Verifier.fromVkey(golden.receipts.vkey);
    for (const [n, batch] of Object.entries(golden.receipts.batches)) {
      batch.receipts.forEach((receipt, i) => {
        const got = verifyReceipt(receipt, [verifier]);
        assert.equal(got.eventId, batch.events[i]![0], `batch ${n} #${i}`);
        assert.equal(got.digest, batch.events[i]![1]);
        assert.equal(got.log, golden.receipts.log);
        assert.equal(got.timeMs, 1_765_000_000_123 + Number(n));
        assert.deepEqual(verifyReceipt(Buffer.from(receipt, "utf8"), [verifier]), got);
      });
    }
    const v1 = golden.receipts.v1;
    assert.deepEqual(verifyReceipt(v1.receipt, [verifier]), { eventId: v1.event_id, log: "default", digest: v1.digest, timeMs: v1.time_ms });
  });

  it("altered receipts are refused: other key, changed digest, event, index, proof hash or signature", () => {
    const verifier = Ed25519Verifier.fromVkey(golden.receipts.vkey);
    const other = Ed25519Verifier.fromVkey(golden.receipts.other_vkey);
    const receipt = golden.receipts.batches["5"]!.receipts[2]!;
    assert.throws(() => verifyReceipt(receipt, [other]), { name: "SignatureError" });
    assert.throws(() => verifyReceipt(golden.receipts.foreign, [verifier]), { name: "SignatureError" });
    const digestAt = receipt.indexOf("digest blake3:") + "digest blake3:".length;
    const badDigest = receipt.slice(0, digestAt) + (receipt[digestAt] === "0" ? "1" : "0") + receipt.slice(digestAt + 1);
    assert.throws(() => verifyReceipt(badDigest, [verifier]), { name: "InvalidProofError" });
    assert.throws(() => verifyReceipt(receipt.replace("index 2\n", "index 3\n"), [verifier]), { name: "InvalidProofError" });
    assert.throws(() => verifyReceipt(flipLine(receipt, 4), [verifier]), { name: "InvalidProofError" });
    const lines = receipt.trimEnd().split("\n");
    assert.throws(() => verifyReceipt(flipLine(receipt, lines.length - 1), [verifier]), { name: "SignatureError" });
    assert.throws(() => verifyReceipt(receipt.replace("sealtrail.dev/receipt-proof/v2\nevent 0", "sealtrail.dev/receipt-proof/v2\nevent X"), [verifier]), { name: "NoteError" });
    assert.throws(() => verifyReceipt(receipt.replace("\n\n", "\n"), [verifier]), { name: "NoteError" });
  });

  it("checkpoints verify under the log key and the timestamped cosignature, and give the cosigned time", () => {
    const trusted = TrustedKeys.fromVkeys([golden.log.log_vkey, golden.log.cosigner_vkey]);
    for (const [size, note] of Object.entries(golden.log.checkpoints)) {
      const got = trusted.verifyCheckpoint(note, { origin: golden.log.origin });
      assert.equal(got.checkpoint.size, BigInt(size));
      assert.equal(b64encode(got.checkpoint.root), golden.log.roots[size]);
      assert.equal(got.timestamp, 1_700_000_000n + BigInt(size));
      assert.deepEqual(got.cosigners, [golden.log.origin + "/clock"]);
    }
    const note = golden.log.checkpoints["7"]!;
    assert.throws(() => trusted.verifyCheckpoint(note, { origin: "another/log" }), { name: "VerificationError" });
    assert.throws(() => TrustedKeys.fromVkeys([golden.log.log_vkey, golden.log.cosigner_vkey])
      .verifyCheckpoint(parseNote(note).text + "\n" + note.split("\n\n")[1]!.split("\n")[0]! + "\n"), { name: "SignatureError" });
    const lines = note.trimEnd().split("\n");
    assert.throws(() => trusted.verifyCheckpoint(flipLine(note, lines.length - 1)), { name: "SignatureError" }); // the cosignature
    assert.throws(() => trusted.verifyCheckpoint(note.replace(/^(.*)\n7\n/, "$1\n8\n")), { name: "SignatureError" });
    const windowed = new TrustedKeys([
      { verifier: Ed25519Verifier.fromVkey(golden.log.log_vkey) },
      { verifier: CosignatureVerifier.fromVkey(golden.log.cosigner_vkey), notBefore: 1_800_000_000 },
    ]);
    assert.throws(() => windowed.verifyCheckpoint(note), /outside its cosigner key's validity window/);
    assert.equal(TrustedKeys.fromVkeys([golden.log.log_vkey]).verifyCheckpoint(note).timestamp, null);
  });

  it("every tlog-proof file verifies its exact entry, and no other entry", () => {
    const log = golden.log;
    const verifiers = [Ed25519Verifier.fromVkey(log.log_vkey), CosignatureVerifier.fromVkey(log.cosigner_vkey)];
    const trusted = TrustedKeys.fromVkeys([log.log_vkey, log.cosigner_vkey]);
    for (const { index, size, file } of log.proofs) {
      const entry = b64(log.entries[index]!);
      assert.equal(verifyTlogProof(file, entry, verifiers, { origin: log.origin }).size, BigInt(size));
      assert.equal(verifyTlogProofTrusted(file, entry, trusted).timestamp, 1_700_000_000n + BigInt(size));
      const parsed = parseTlogProof(file);
      assert.equal(parsed.index, BigInt(index));
      assert.equal(parsed.extra, null);
      assert.throws(() => verifyTlogProof(file, b64(log.entries[(index + 1) % log.entries.length]!), verifiers), { name: "InvalidProofError" });
    }
    const extra = parseTlogProof(log.extra_proof);
    assert.equal(Buffer.from(extra.extra!).toString(), "hint");
    verifyTlogProof(extra, b64(log.entries[3]!), verifiers);
    const file = log.proofs[5]!.file;
    assert.throws(() => verifyTlogProof(file.replace("index 5", "index 6"), b64(log.entries[5]!), verifiers), { name: "InvalidProofError" });
    assert.throws(() => verifyTlogProof(file.replace("index 5", "index 05"), b64(log.entries[5]!), verifiers), { name: "NoteError" });
    assert.throws(() => verifyTlogProof(flipLine(file, 2), b64(log.entries[5]!), verifiers), { name: "InvalidProofError" });
    assert.throws(() => parseTlogProof(file.replace("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2")), { name: "NoteError" });
    assert.throws(() => verifyTlogProof(file, b64(log.entries[5]!), [Ed25519Verifier.fromVkey(golden.receipts.vkey)]), { name: "SignatureError" });
  });

  it("consistency proofs between the golden checkpoints verify, and swapped ones do not", () => {
    const cp = (n: number) => parseCheckpoint(parseNote(golden.log.checkpoints[String(n)]!).text);
    for (const c of golden.log.consistency) {
      checkConsistency(cp(c.from), cp(c.to), c.proof.map(b64));
      if (c.proof.length) {
        assert.throws(() => checkConsistency(cp(c.from), cp(c.to), c.proof.slice(1).map(b64)), { name: "InconsistentCheckpointError" });
      }
    }
  });

  it("canonical JSON and tool definition hashes equal the Python core's bytes", () => {
    for (const c of golden.canonical) {
      assert.equal(Buffer.from(canonicalJson(c.value)).toString("utf8"), c.jcs);
      assert.equal(toolDefHash(c.value), c.def_hash);
    }
  });
});
