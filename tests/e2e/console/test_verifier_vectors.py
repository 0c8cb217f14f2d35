"""The console's verifier (static/verify.js), run in Chromium, against the vectors from outside the
project: every RFC 6962 inclusion case, the RFC 6962 reference roots (checking the leaf hash), and
the C2SP signed-note example (../shared/vectors)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.e2e.console.conftest import Console

VECTORS = Path(__file__).resolve().parents[3] / ".." / "shared" / "vectors"

RUN_INCLUSION = """async cases => {
  const v = await import('/console/static/verify.js');
  const out = [];
  for (const c of cases) {
    let ok;
    try {
      const root = await v.inclusionRoot(v.b64decode(c.leafHash, 'leaf'), BigInt(c.leafIdx), BigInt(c.treeSize),
                                         (c.proof || []).map((p) => v.b64decode(p, 'proof')));
      ok = v.b64encode(root) === c.root;
    } catch (e) { ok = false; }
    out.push(ok);
  }
  return out;
}"""

RUN_ROOTS = """async leaves => {
  const v = await import('/console/static/verify.js');
  const bytes = (hex) => Uint8Array.from(hex.match(/../g) || [], (b) => parseInt(b, 16));
  const hex = (a) => Array.from(a, (b) => b.toString(16).padStart(2, '0')).join('');
  const hashes = await Promise.all(leaves.map((l) => v.leafHash(bytes(l))));
  const roots = [];
  for (let n = 1; n <= hashes.length; n++) {
    // the root of the first n leaves: the console's leaf hashes, node hashes computed here
    const level = async (hs) => {
      if (hs.length === 1) return hs[0];
      let k = 1; while (k * 2 < hs.length) k *= 2;
      const l = await level(hs.slice(0, k)), r = await level(hs.slice(k));
      const buf = new Uint8Array(65); buf[0] = 1; buf.set(l, 1); buf.set(r, 33);
      return new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
    };
    roots.push(hex(await level(hashes.slice(0, n))));
  }
  return roots;
}"""

RUN_NOTE = """async ([vkey, note]) => {
  const v = await import('/console/static/verify.js');
  const good = await v.openNote(note, await v.parseVkey(vkey));
  let forged;
  const changed = note.replace('example message', 'example massage');
  try { await v.openNote(changed, await v.parseVkey(vkey)); forged = 'accepted'; } catch (e) { forged = e.message; }
  return [good, forged];
}"""


def test_inclusion_vectors_in_the_browser(new_page: Any, console: Console) -> None:
    files = sorted((VECTORS / "rfc6962" / "inclusion").rglob("*.json"))
    assert len(files) >= 80
    cases = [json.loads(f.read_text()) for f in files]
    page = new_page().page
    page.goto(console.url + "/console")
    results = page.evaluate(RUN_INCLUSION, cases)
    wrong = [str(f.relative_to(VECTORS)) for f, c, ok in zip(files, cases, results, strict=True) if ok == c["wantErr"]]
    assert wrong == []


def test_reference_roots_and_the_signed_note_example_in_the_browser(new_page: Any, console: Console) -> None:
    tree = json.loads((VECTORS / "rfc6962" / "reference-tree.json").read_text())
    note = json.loads((VECTORS / "c2sp" / "signed-note-example.json").read_text())
    page = new_page().page
    page.goto(console.url + "/console")
    assert page.evaluate(RUN_ROOTS, tree["leaf_inputs_hex"]) == tree["root_by_size_hex"][1:]
    good, forged = page.evaluate(RUN_NOTE, [note["verifier_key"], note["signed_note"]])
    assert good == "This is an example message.\n"
    assert "does not verify" in forged
