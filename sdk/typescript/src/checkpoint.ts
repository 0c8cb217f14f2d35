/**
 * C2SP checkpoints (c2sp.org/tlog-checkpoint) and the trust policy that checks a signed one, as
 * `sealtrail/core/checkpoint.py` and `sealtrail/core/verify.py` do.
 *
 * A checkpoint note text is `<origin>\n<tree size>\n<base64 root>\n` plus optional non-empty
 * extension lines (Sealtrail writes none). A signed checkpoint MUST carry a valid signature from a
 * trusted log key (type 0x01); when the trusted set holds cosigner keys (type 0x04) it MUST also
 * carry a valid cosignature from one of them whose time lies inside that key's validity window, and
 * the log key MUST be valid at that time too.
 */

import { b64decode, utf8 } from "./encoding.ts";
import { InconsistentCheckpointError, InvalidInputError, InvalidProofError, NoteError, SignatureError, VerificationError } from "./errors.ts";
import { CosignatureVerifier, COSIGNATURE_TYPE, signatureTimestamp } from "./cosignature.ts";
import { emptyRoot, HASH_SIZE, verifyConsistency } from "./merkle.ts";
import { decodeVkey, ED25519_TYPE, Ed25519Verifier, parseNote } from "./note.ts";
import { bytesEqual } from "./encoding.ts";
import { publishedKeys } from "./keys.ts";

export const MAX_TREE_SIZE = 2n ** 63n - 1n;
const DECIMAL = /^(0|[1-9][0-9]*)$/;
const CONTROL = /[\x00-\x1f]/;

/** A tree head: the log's origin, its size and its RFC 6962 root hash. */
export interface Checkpoint {
  origin: string;
  size: bigint;
  root: Uint8Array;
  extensions: string[];
}

/** Parse an ASCII decimal with no leading zeroes, at most `limit`; else {@link NoteError}. */
export function parseDecimal(text: string, what: string, limit: bigint = MAX_TREE_SIZE): bigint {
  if (!DECIMAL.test(text) || text.length > 19) throw new NoteError(`${what} must be an ASCII decimal without leading zeroes`);
  const value = BigInt(text);
  if (value > limit) throw new NoteError(`${what} is too large`);
  return value;
}

/** Parse a checkpoint note text (no signatures); throws {@link NoteError} if malformed. */
export function parseCheckpoint(text: string): Checkpoint {
  if (!text.endsWith("\n")) throw new NoteError("checkpoint must end with a newline");
  const lines = text.slice(0, -1).split("\n");
  if (lines.length < 3) throw new NoteError("checkpoint needs an origin, a tree size and a root hash");
  const [origin, sizeLine, rootLine, ...extensions] = lines as [string, string, string, ...string[]];
  if (!origin || CONTROL.test(origin)) throw new NoteError("checkpoint origin must be non-empty");
  const size = parseDecimal(sizeLine, "tree size");
  const root = b64decode(rootLine, "root hash");
  if (root.length !== HASH_SIZE) throw new NoteError("root hash must be 32 bytes");
  if (extensions.some((ext) => !ext || CONTROL.test(ext))) throw new NoteError("extension lines must be non-empty");
  return { origin, size, root, extensions };
}

/** A trusted key and its validity window `[notBefore, notAfter)` in POSIX seconds. */
export interface TrustedKey {
  verifier: Ed25519Verifier | CosignatureVerifier;
  notBefore?: number | null;
  notAfter?: number | null;
}

/** A checkpoint whose signatures satisfied a {@link TrustedKeys} policy. */
export interface VerifiedCheckpoint {
  checkpoint: Checkpoint;
  /** The cosigned time (POSIX seconds), or null when no cosigner key is trusted. */
  timestamp: bigint | null;
  logKeys: string[];
  cosigners: string[];
}

/** Parse a vkey of type 0x01 (log key) or 0x04 (cosigner key); {@link NoteError} otherwise. */
export function verifierFromVkey(vkey: string): Ed25519Verifier | CosignatureVerifier {
  const sigType = decodeVkey(vkey).sigType;
  if (sigType === ED25519_TYPE) return Ed25519Verifier.fromVkey(vkey);
  if (sigType === COSIGNATURE_TYPE) return CosignatureVerifier.fromVkey(vkey);
  throw new NoteError(`unsupported verifier key type 0x${sigType.toString(16).padStart(2, "0")}`);
}

const isCosigner = (k: TrustedKey): boolean => k.verifier instanceof CosignatureVerifier;
const unbounded = (k: TrustedKey): boolean => k.notBefore == null && k.notAfter == null;
const validAt = (k: TrustedKey, ts: bigint): boolean =>
  (k.notBefore == null || ts >= BigInt(k.notBefore)) && (k.notAfter == null || ts < BigInt(k.notAfter));

/** The log and cosigner keys an auditor trusts, with rotation windows. */
export class TrustedKeys {
  private readonly keys = new Map<string, TrustedKey>();
  private readonly needsCosignature: boolean;

  constructor(keys: Iterable<TrustedKey>) {
    for (const key of keys) {
      const ident = `${key.verifier.name}\n${key.verifier.keyId}`;
      if (this.keys.has(ident)) throw new InvalidInputError(`key ${key.verifier.name} is listed twice`);
      this.keys.set(ident, key);
    }
    if (!this.keys.size) throw new InvalidInputError("at least one trusted key is needed");
    this.needsCosignature = [...this.keys.values()].some(isCosigner);
  }

  /** Trust each vkey (type 0x01 or 0x04) without a validity window. */
  static fromVkeys(vkeys: Iterable<string>): TrustedKeys {
    return new TrustedKeys([...vkeys].map((v) => ({ verifier: verifierFromVkey(v) })));
  }

  /**
   * Trust the `checkpoint` and `cosign` keys of a `GET /v1/keys` answer, with their validity
   * windows. Other purposes (receipt keys, erasure receipts) are left out.
   */
  static fromPublished(body: unknown): TrustedKeys {
    return new TrustedKeys(publishedKeys(body).filter((k) => k.purpose === "checkpoint" || k.purpose === "cosign").map((k) => ({
      verifier: verifierFromVkey(k.vkey), notBefore: k.notBefore, notAfter: k.notAfter,
    })));
  }

  /** Check a signed checkpoint note against this policy and return what it proves. */
  verifyCheckpoint(note: string | Uint8Array, options: { origin?: string } = {}): VerifiedCheckpoint {
    const parsed = parseNote(note);
    const checkpoint = parseCheckpoint(parsed.text);
    if (options.origin !== undefined && checkpoint.origin !== options.origin) {
      throw new VerificationError(`checkpoint is for log ${JSON.stringify(checkpoint.origin)}, not ${JSON.stringify(options.origin)}`);
    }
    const text = utf8(parsed.text);
    const logKeys: TrustedKey[] = [];
    const cosigned: [TrustedKey, bigint][] = [];
    for (const sig of parsed.signatures) {
      const key = this.keys.get(`${sig.name}\n${sig.keyId}`);
      if (key === undefined) continue;
      if (!key.verifier.verify(text, sig.signature)) throw new SignatureError(`signature by trusted key ${sig.name} does not verify`);
      if (isCosigner(key)) cosigned.push([key, signatureTimestamp(sig.signature)]);
      else logKeys.push(key);
    }
    if (!logKeys.length) throw new SignatureError("checkpoint is not signed by a trusted log key");
    if (!this.needsCosignature) {
      const usable = logKeys.filter(unbounded);
      if (!usable.length) throw new SignatureError("log key has a validity window but no trusted cosigner gives a time");
      return { checkpoint, timestamp: null, logKeys: usable.map((k) => k.verifier.name), cosigners: [] };
    }
    return timed(checkpoint, logKeys, cosigned);
  }
}

function timed(checkpoint: Checkpoint, logKeys: TrustedKey[], cosigned: [TrustedKey, bigint][]): VerifiedCheckpoint {
  if (!cosigned.length) throw new SignatureError("checkpoint carries no trusted cosignature");
  const inWindow = cosigned.filter(([k, ts]) => validAt(k, ts)).sort((a, b) => (a[1] < b[1] ? 1 : a[1] > b[1] ? -1 : 0));
  if (!inWindow.length) throw new SignatureError("checkpoint was cosigned outside its cosigner key's validity window");
  for (const [cosigner, ts] of inWindow) {
    const signers = logKeys.filter((k) => validAt(k, ts));
    if (signers.length) {
      return { checkpoint, timestamp: ts, logKeys: signers.map((k) => k.verifier.name), cosigners: [cosigner.verifier.name] };
    }
  }
  throw new SignatureError(`checkpoint was signed by a log key outside its validity window at ${inWindow[0]![1]}`);
}

/** Check that `newer` extends `older`; throws {@link InconsistentCheckpointError} if not shown. */
export function checkConsistency(older: Checkpoint, newer: Checkpoint, proof: readonly Uint8Array[]): void {
  if (older.origin !== newer.origin) {
    throw new InconsistentCheckpointError(`checkpoints of different logs: ${JSON.stringify(older.origin)}, ${JSON.stringify(newer.origin)}`);
  }
  if (older.size === 0n) {
    if (!bytesEqual(older.root, emptyRoot()) || proof.length) {
      throw new InconsistentCheckpointError("an empty tree has the empty root and needs no proof");
    }
    return;
  }
  try {
    verifyConsistency(older.size, newer.size, proof, older.root, newer.root);
  } catch (e) {
    if (e instanceof InvalidProofError) {
      throw new InconsistentCheckpointError(`tree at size ${newer.size} is not shown to extend tree at size ${older.size}: ${e.message}`, { cause: e });
    }
    throw e;
  }
}
