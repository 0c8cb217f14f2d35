/** Known-answer vectors from outside the project (../shared/vectors): RFC 6962 proofs, reference roots, C2SP notes. */

import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";

import { Ed25519Verifier, leafHash, openNote, rootOf, verifyConsistency, verifyInclusion } from "../src/index.ts";
import { toHex } from "../src/encoding.ts";
import { REPO } from "./support/serve.ts";

const VECTORS = path.resolve(REPO, "..", "shared", "vectors");
const b64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "base64"));

function cases(kind: string): [string, Record<string, unknown>][] {
  const root = path.join(VECTORS, "rfc6962", kind);
  const out: [string, Record<string, unknown>][] = [];
  for (const dir of readdirSync(root)) {
    const sub = path.join(root, dir);
    if (!statSync(sub).isDirectory()) continue;
    for (const file of readdirSync(sub).filter((f) => f.endsWith(".json"))) {
      out.push([`${dir}/${file}`, JSON.parse(readFileSync(path.join(sub, file), "utf8")) as Record<string, unknown>]);
    }
  }
  return out;
}

function outcome(fn: () => void): boolean {
  try {
    fn();
    return true;
  } catch {
    return false;
  }
}

describe("shared vectors", () => {
  it("are found beside the repository", () => {
    assert.ok(existsSync(VECTORS), `${VECTORS} is missing`);
    assert.ok(cases("inclusion").length > 20);
    assert.ok(cases("consistency").length > 20);
  });

  it("RFC 6962 inclusion cases: every happy path verifies, every wantErr case is refused", () => {
    for (const [name, c] of cases("inclusion")) {
      const ok = outcome(() => verifyInclusion(b64(c.leafHash as string), c.leafIdx as number, c.treeSize as number,
        ((c.proof as string[] | null) ?? []).map(b64), b64(c.root as string)));
      assert.equal(ok, !c.wantErr, `inclusion ${name}`);
    }
  });

  it("RFC 6962 consistency cases: every happy path verifies, every wantErr case is refused", () => {
    for (const [name, c] of cases("consistency")) {
      const ok = outcome(() => verifyConsistency(c.size1 as number, c.size2 as number,
        ((c.proof as string[] | null) ?? []).map(b64), b64(c.root1 as string), b64(c.root2 as string)));
      assert.equal(ok, !c.wantErr, `consistency ${name}`);
    }
  });

  it("RFC 6962 reference roots for N = 0..8", () => {
    const ref = JSON.parse(readFileSync(path.join(VECTORS, "rfc6962", "reference-tree.json"), "utf8")) as
      { leaf_inputs_hex: string[]; root_by_size_hex: string[] };
    const leaves = ref.leaf_inputs_hex.map((h) => leafHash(new Uint8Array(Buffer.from(h, "hex"))));
    ref.root_by_size_hex.forEach((want, n) => assert.equal(toHex(rootOf(leaves.slice(0, n))), want, `root of ${n}`));
  });

  it("the C2SP signed-note example verifies, and a changed byte does not", () => {
    const ex = JSON.parse(readFileSync(path.join(VECTORS, "c2sp", "signed-note-example.json"), "utf8")) as
      { verifier_key: string; signed_note: string };
    const verifier = Ed25519Verifier.fromVkey(ex.verifier_key);
    assert.equal(openNote(ex.signed_note, [verifier]).text, "This is an example message.\n");
    assert.throws(() => openNote(ex.signed_note.replace("example message", "examplE message"), [verifier]), { name: "SignatureError" });
  });
});
