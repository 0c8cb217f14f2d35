/**
 * Offline inclusion proofs (c2sp.org/tlog-proof), the `.tlog-proof` files that
 * `GET /v1/events/{event_id}/tlog-proof` serves:
 *
 * ```
 * c2sp.org/tlog-proof@v1
 * [extra <base64 opaque data>]
 * index <leaf index>
 * <base64 proof hash, leaf's sibling first>   (zero or more lines)
 * <empty line>
 * <the signed checkpoint note, verbatim>
 * ```
 *
 * The extra data is not authenticated and MUST NOT be trusted. Parsing is strict, as in
 * `sealtrail/core/tlogproof.py`.
 */

import { type Checkpoint, parseCheckpoint, parseDecimal, type TrustedKeys, type VerifiedCheckpoint } from "./checkpoint.ts";
import { asText, b64decode } from "./encoding.ts";
import { NoteError, VerificationError } from "./errors.ts";
import { HASH_SIZE, leafHash, verifyInclusion } from "./merkle.ts";
import { openNote, parseNote, type Verifier } from "./note.ts";

export const TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1";

/** A parsed proof file: leaf index, inclusion proof, signed checkpoint note, extra data. */
export interface TlogProof {
  index: bigint;
  proof: Uint8Array[];
  note: string;
  extra: Uint8Array | null;
  /** The checkpoint in the note (its signatures NOT checked). */
  checkpoint: Checkpoint;
}

/** Parse a proof file; throws {@link NoteError} if anything is malformed. */
export function parseTlogProof(data: string | Uint8Array): TlogProof {
  const text = asText(data, "proof file");
  const split = text.indexOf("\n\n");
  if (split < 0) throw new NoteError("proof file has no empty line before its checkpoint");
  const lines = text.slice(0, split).split("\n");
  const note = text.slice(split + 2);
  if (lines[0] !== TLOG_PROOF_HEADER) throw new NoteError(`proof file must start with ${TLOG_PROOF_HEADER}`);
  let pos = 1;
  let extra: Uint8Array | null = null;
  if (lines[pos]?.startsWith("extra ")) {
    extra = b64decode(lines[pos]!.slice("extra ".length), "extra data");
    if (!extra.length) throw new NoteError("extra data must be non-empty when present");
    pos += 1;
  }
  if (!lines[pos]?.startsWith("index ")) throw new NoteError("proof file needs an index line");
  const index = parseDecimal(lines[pos]!.slice("index ".length), "index");
  const proof = lines.slice(pos + 1).map((line) => b64decode(line, "proof hash"));
  if (proof.some((h) => h.length !== HASH_SIZE)) throw new NoteError("proof hashes must be 32 bytes");
  const checkpoint = parseCheckpoint(parseNote(note).text);
  return { index, proof, note, extra, checkpoint };
}

/**
 * Check that `entry` (the exact entry bytes) is in the log under a checkpoint signed by one of
 * `verifiers`, and return the checkpoint. Throws {@link NoteError} (malformed),
 * {@link SignatureError} (no known key signed it, or a known key's signature fails),
 * {@link VerificationError} (wrong origin) or {@link InvalidProofError} (not at that index).
 */
export function verifyTlogProof(
  data: string | Uint8Array | TlogProof, entry: Uint8Array, verifiers: Iterable<Verifier>,
  options: { origin?: string } = {},
): Checkpoint {
  const proof = typeof data === "string" || data instanceof Uint8Array ? parseTlogProof(data) : data;
  const checkpoint = parseCheckpoint(openNote(proof.note, verifiers).text);
  checkOrigin(checkpoint, options.origin);
  verifyInclusion(leafHash(entry), proof.index, checkpoint.size, proof.proof, checkpoint.root);
  return checkpoint;
}

/**
 * As {@link verifyTlogProof}, with the full checkpoint policy of {@link TrustedKeys}: the
 * checkpoint must also carry a trusted timestamped cosignature when cosigner keys are trusted.
 */
export function verifyTlogProofTrusted(
  data: string | Uint8Array | TlogProof, entry: Uint8Array, trusted: TrustedKeys, options: { origin?: string } = {},
): VerifiedCheckpoint {
  const proof = typeof data === "string" || data instanceof Uint8Array ? parseTlogProof(data) : data;
  const verified = trusted.verifyCheckpoint(proof.note, options);
  const { checkpoint } = verified;
  verifyInclusion(leafHash(entry), proof.index, checkpoint.size, proof.proof, checkpoint.root);
  return verified;
}

function checkOrigin(checkpoint: Checkpoint, origin: string | undefined): void {
  if (origin !== undefined && checkpoint.origin !== origin) {
    throw new VerificationError(`checkpoint is for ${JSON.stringify(checkpoint.origin)}, not ${JSON.stringify(origin)}`);
  }
}
