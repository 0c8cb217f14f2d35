/**
 * C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys (signature type 0x01), as
 * `sealtrail/core/note.py` reads them.
 *
 * A note is UTF-8 text ending in a newline, a blank line, then one or more signature lines
 * `— <key name> base64(key ID || signature)`. A key is named by `(name, key ID)` with
 * `key ID = SHA-256(name || 0x0A || type || public key)[:4]` read as a big-endian uint32.
 * Verification MUST ignore lines from unknown keys, MUST reject the note when a line from a known
 * key does not verify, and MUST reject it when no known key signed it.
 */

import * as ed from "@noble/ed25519";
import { sha256, sha512 } from "@noble/hashes/sha2.js";

import { asText, b64decode, concat, readUint32be, utf8 } from "./encoding.ts";
import { NoteError, SignatureError } from "./errors.ts";

ed.hashes.sha512 = sha512;

export const ED25519_TYPE = 0x01;
export const MAX_SIGNATURES = 100;
export const SIG_PREFIX = "— ";

// Python's str.isspace() set, less the controls that are refused anyway.
const KEY_NAME_BAD = /[\x00-\x20\x7f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000+]/u;
const CONTROL_BUT_NEWLINE = /[\x00-\x09\x0b-\x1f]/;

/** Throw {@link NoteError} unless `name` is non-empty and holds no Unicode space, `+` or control. */
export function checkKeyName(name: string): void {
  if (!name || KEY_NAME_BAD.test(name)) {
    throw new NoteError("key name must be non-empty without spaces, '+' or control characters");
  }
}

/** `SHA-256(name || 0x0A || type || public key)[:4]` as a big-endian uint32. */
export function computeKeyId(name: string, sigType: number, publicKey: Uint8Array): number {
  return readUint32be(sha256(concat(utf8(name), Uint8Array.of(0x0a, sigType), publicKey)));
}

/** Checks signatures made by one key, named by `(name, keyId)`. */
export interface Verifier {
  readonly name: string;
  readonly keyId: number;
  /** Whether `signature` (without the key ID) signs the note `text`. */
  verify(text: Uint8Array, signature: Uint8Array): boolean;
}

/** A decoded verifier key string: name, key ID, signature type and public key bytes. */
export interface KeyMaterial {
  name: string;
  keyId: number;
  sigType: number;
  key: Uint8Array;
}

/** Split a `name+hexid+base64(type || key)` verifier key; the key ID is checked by the typed parsers. */
export function decodeVkey(vkey: string): KeyMaterial {
  const first = vkey.indexOf("+");
  const second = first < 0 ? -1 : vkey.indexOf("+", first + 1);
  if (second < 0) throw new NoteError("verifier key must look like name+hexid+base64");
  const name = vkey.slice(0, first);
  const hexId = vkey.slice(first + 1, second);
  checkKeyName(name);
  if (!/^[0-9a-fA-F]{8}$/.test(hexId)) throw new NoteError("verifier key ID must be 8 hex digits");
  const raw = b64decode(vkey.slice(second + 1), "verifier key");
  if (raw.length < 2) throw new NoteError("verifier key is too short");
  return { name, keyId: parseInt(hexId, 16), sigType: raw[0]!, key: raw.slice(1) };
}

/** The 32-byte Ed25519 public key of a decoded vkey of `sigType`, its key ID checked. */
export function ed25519PublicKey(material: KeyMaterial, sigType: number): Uint8Array {
  if (material.sigType !== sigType || material.key.length !== 32) {
    throw new NoteError(`not an Ed25519 key of signature type 0x${sigType.toString(16).padStart(2, "0")}`);
  }
  if (computeKeyId(material.name, sigType, material.key) !== material.keyId) {
    throw new NoteError(`key ID of ${JSON.stringify(material.name)} does not match its public key`);
  }
  return material.key;
}

/** Ed25519 verification, RFC 8032 strict; a malformed key or signature is a failure, never a throw. */
export function ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== 64) return false;
  try {
    return ed.verify(signature, message, publicKey, { zip215: false });
  } catch {
    return false;
  }
}

/** Verifier for plain Ed25519 note signatures (type 0x01). */
export class Ed25519Verifier implements Verifier {
  readonly keyId: number;

  constructor(readonly name: string, readonly publicKey: Uint8Array) {
    checkKeyName(name);
    if (publicKey.length !== 32) throw new NoteError("Ed25519 public key must be 32 bytes");
    this.keyId = computeKeyId(name, ED25519_TYPE, publicKey);
  }

  static fromVkey(vkey: string): Ed25519Verifier {
    const material = decodeVkey(vkey);
    return new Ed25519Verifier(material.name, ed25519PublicKey(material, ED25519_TYPE));
  }

  verify(text: Uint8Array, signature: Uint8Array): boolean {
    return ed25519Verify(this.publicKey, text, signature);
  }
}

/** One signature line: key name, key ID and the signature bytes after the key ID. */
export interface NoteSignature {
  name: string;
  keyId: number;
  signature: Uint8Array;
}

/** A parsed (not yet verified) signed note. */
export interface Note {
  text: string;
  signatures: NoteSignature[];
}

function parseSignatureLine(line: string): NoteSignature {
  if (!line.startsWith(SIG_PREFIX)) throw new NoteError("signature line must start with an em dash and a space");
  const rest = line.slice(SIG_PREFIX.length);
  const space = rest.indexOf(" ");
  if (space < 0 || space === rest.length - 1) throw new NoteError("signature line must hold a key name and a signature");
  const name = rest.slice(0, space);
  checkKeyName(name);
  const raw = b64decode(rest.slice(space + 1), "signature");
  if (raw.length < 5) throw new NoteError("signature is too short");
  return { name, keyId: readUint32be(raw), signature: raw.slice(4) };
}

/** Parse a signed note; throws {@link NoteError} if it is malformed in any way. */
export function parseNote(data: string | Uint8Array): Note {
  const note = asText(data, "note");
  if (CONTROL_BUT_NEWLINE.test(note)) throw new NoteError("note must not contain control characters other than newline");
  const split = note.lastIndexOf("\n\n");
  if (split < 0) throw new NoteError("note has no blank line before its signatures");
  const text = note.slice(0, split + 1);
  const block = note.slice(split + 2);
  if (!block || !block.endsWith("\n")) throw new NoteError("note must end with a newline-terminated signature line");
  const lines = block.slice(0, -1).split("\n");
  if (lines.length > MAX_SIGNATURES) throw new NoteError(`note has more than ${MAX_SIGNATURES} signatures`);
  return { text, signatures: lines.map(parseSignatureLine) };
}

/** A note with the signatures that verified and those from unknown keys. */
export interface VerifiedNote {
  text: string;
  verified: NoteSignature[];
  unknown: NoteSignature[];
}

function sameSignature(a: NoteSignature, b: NoteSignature): boolean {
  return a.name === b.name && a.keyId === b.keyId && Buffer.compare(a.signature, b.signature) === 0;
}

/**
 * Parse and verify a note against known keys. Lines from unknown keys (no verifier with the same
 * name AND key ID) are ignored. Throws {@link SignatureError} when a known key's line does not
 * verify or no known key signed it.
 */
export function openNote(data: string | Uint8Array | Note, verifiers: Iterable<Verifier>): VerifiedNote {
  const note = typeof data === "string" || data instanceof Uint8Array ? parseNote(data) : data;
  const known = new Map<string, Verifier>();
  for (const v of verifiers) known.set(`${v.name}\n${v.keyId}`, v);
  const raw = utf8(note.text);
  const verified: NoteSignature[] = [];
  const unknown: NoteSignature[] = [];
  for (const sig of note.signatures) {
    const verifier = known.get(`${sig.name}\n${sig.keyId}`);
    if (verifier === undefined) {
      unknown.push(sig);
    } else if (!verifier.verify(raw, sig.signature)) {
      throw new SignatureError(`signature by ${sig.name} (${sig.keyId.toString(16).padStart(8, "0")}) does not verify`);
    } else if (!verified.some((v) => sameSignature(v, sig))) {
      verified.push(sig);
    }
  }
  if (!verified.length) throw new SignatureError("note is not signed by any known key");
  return { text: note.text, verified, unknown };
}
