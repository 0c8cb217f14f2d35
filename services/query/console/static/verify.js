// In-browser verification of an event against the signed log (docs/console.md): the
// c2sp.org/tlog-proof file, the entry bytes, and a pinned checkpoint verifier key. The checks
// follow sealtrail/core/tlogproof.py, note.py and merkle.py (and sdk/typescript/src); hashing
// and Ed25519 are WebCrypto's (Ed25519 from the vendored noble-ed25519 where the browser lacks it).

const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1";
const SIG_PREFIX = "\u2014 ";

export class VerifyError extends Error {}

export function b64decode(text, what) {
  if (!B64.test(text)) throw new VerifyError(`${what} is not base64`);
  const raw = atob(text);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

export function b64encode(bytes) {
  let raw = "";
  for (const b of bytes) raw += String.fromCharCode(b);
  return btoa(raw);
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

function equal(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

export async function leafHash(entry) {
  return sha256(concat(Uint8Array.of(0), entry));
}

async function nodeHash(left, right) {
  return sha256(concat(Uint8Array.of(1), left, right));
}

// RFC 9162 2.1.3.2: the root that `proof` leads to from `leaf` at `index` in a tree of `size`.
export async function inclusionRoot(leaf, index, size, proof) {
  if (!(index >= 0n && index < size)) throw new VerifyError(`leaf index ${index} is outside a tree of size ${size}`);
  if ([leaf, ...proof].some((x) => x.length !== 32)) throw new VerifyError("leaf and proof hashes must be 32 bytes");
  let fn = index, sn = size - 1n, r = leaf;
  for (const p of proof) {
    if (sn === 0n) throw new VerifyError("inclusion proof is too long");
    if (fn & 1n || fn === sn) {
      r = await nodeHash(p, r);
      while (!(fn & 1n) && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n; sn >>= 1n;
  }
  if (sn !== 0n) throw new VerifyError("inclusion proof is too short");
  return r;
}

function decimal(text, what) {
  if (!/^(0|[1-9][0-9]{0,19})$/.test(text)) throw new VerifyError(`${what} is not a decimal number`);
  return BigInt(text);
}

function keyIdOf(bytes) {
  return ((bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3]) >>> 0;
}

// A verifier key `name+hexid+base64(0x01 || 32-byte key)`, its key ID checked.
export async function parseVkey(vkey) {
  const text = vkey.trim();
  const first = text.indexOf("+"), second = first < 0 ? -1 : text.indexOf("+", first + 1);
  const parts = [text.slice(0, first), text.slice(first + 1, second), text.slice(second + 1)];
  if (second < 0 || !parts[0] || !/^[0-9a-f]{8}$/i.test(parts[1])) {
    throw new VerifyError("the verifier key must look like name+hexid+base64");
  }
  const raw = b64decode(parts[2], "verifier key");
  if (raw.length !== 33 || raw[0] !== 1) throw new VerifyError("the verifier key is not an Ed25519 key");
  const name = parts[0], keyId = parseInt(parts[1], 16), key = raw.slice(1);
  const enc = new TextEncoder();
  const id = keyIdOf(await sha256(concat(enc.encode(name), Uint8Array.of(0x0a, 1), key)));
  if (id !== keyId) throw new VerifyError("the verifier key's ID does not match its public key");
  return { name, keyId, key };
}

export function parseNote(note) {
  const split = note.lastIndexOf("\n\n");
  if (split < 0 || !note.endsWith("\n")) throw new VerifyError("the note has no signature block");
  const text = note.slice(0, split + 1);
  const signatures = note.slice(split + 2, -1).split("\n").map((line) => {
    if (!line.startsWith(SIG_PREFIX)) throw new VerifyError("a signature line must start with an em dash");
    const [name, sig] = line.slice(SIG_PREFIX.length).split(" ");
    const raw = b64decode(sig || "", "signature");
    if (!name || raw.length < 5) throw new VerifyError("a signature line is malformed");
    return { name, keyId: keyIdOf(raw), signature: raw.slice(4) };
  });
  return { text, signatures };
}

// Ed25519 verification: WebCrypto's, or, where the browser lacks it, the vendored
// noble-ed25519 (loaded only then; strict RFC 8032, zip215 off). Returns [valid, engine].
let fallback = null;

async function ed25519Verify(publicKey, signature, message) {
  if (signature.length !== 64) return [false, "webcrypto"];
  let key = null;
  try {
    key = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
  } catch {
    key = null;
  }
  if (key) return [await crypto.subtle.verify("Ed25519", key, signature, message), "webcrypto"];
  fallback ??= import("./noble-ed25519.js");
  const ed = await fallback;
  try {
    return [await ed.verifyAsync(signature, message, publicKey, { zip215: false }), "noble-ed25519"];
  } catch {
    return [false, "noble-ed25519"];
  }
}

// The note's text if it carries a valid signature of `pinned` (a parsed vkey); throws otherwise.
export async function openNote(note, pinned) {
  if (!crypto.subtle) throw new VerifyError("this browser has no WebCrypto (a secure context is needed)");
  const { text, signatures } = parseNote(note);
  const mine = signatures.filter((s) => s.name === pinned.name && s.keyId === pinned.keyId);
  if (!mine.length) throw new VerifyError(`the checkpoint is not signed by the pinned key ${pinned.name}`);
  const message = new TextEncoder().encode(text);
  for (const s of mine) {
    const [valid, engine] = await ed25519Verify(pinned.key, s.signature, message);
    if (!valid) throw new VerifyError(`the signature by the pinned key ${pinned.name} does not verify`);
    lastEngine = engine;
  }
  return text;
}

let lastEngine = "";

// Which Ed25519 implementation checked the last signature: "webcrypto" or "noble-ed25519".
export function ed25519Engine() { return lastEngine; }

export function parseCheckpoint(text) {
  const lines = text.split("\n");
  if (lines.length < 4) throw new VerifyError("the checkpoint is too short");
  const root = b64decode(lines[2], "checkpoint root");
  if (root.length !== 32) throw new VerifyError("the checkpoint root is not 32 bytes");
  return { origin: lines[0], size: decimal(lines[1], "checkpoint size"), root };
}

export function parseTlogProof(text) {
  const split = text.indexOf("\n\n");
  if (split < 0) throw new VerifyError("the proof file has no empty line before its checkpoint");
  const lines = text.slice(0, split).split("\n");
  if (lines[0] !== TLOG_PROOF_HEADER) throw new VerifyError(`the proof file must start with ${TLOG_PROOF_HEADER}`);
  let pos = 1;
  if (lines[pos]?.startsWith("extra ")) pos += 1;
  if (!lines[pos]?.startsWith("index ")) throw new VerifyError("the proof file has no index line");
  const index = decimal(lines[pos].slice(6), "index");
  const proof = lines.slice(pos + 1).map((l) => b64decode(l, "proof hash"));
  if (proof.some((h) => h.length !== 32)) throw new VerifyError("proof hashes must be 32 bytes");
  return { index, proof, note: text.slice(split + 2) };
}

// The whole check: the checkpoint note is signed by `vkey`, and `entry` is leaf `index` of the
// tree it commits to. Returns {origin, index, size, root, leaf} (hashes in base64); throws
// VerifyError naming the first check that failed.
export async function verifyTlogProof(proofText, entry, vkey) {
  const pinned = await parseVkey(vkey);
  const proof = parseTlogProof(proofText);
  const checkpoint = parseCheckpoint(await openNote(proof.note, pinned));
  const leaf = await leafHash(entry);
  const root = await inclusionRoot(leaf, proof.index, checkpoint.size, proof.proof);
  if (!equal(root, checkpoint.root)) throw new VerifyError("the inclusion proof does not lead to the signed root");
  return { origin: checkpoint.origin, index: proof.index, size: checkpoint.size, root: b64encode(root),
           leaf: b64encode(leaf), ed25519: ed25519Engine() };
}
