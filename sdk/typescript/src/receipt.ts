/**
 * Ingest receipts: a signed promise that an accepted event will appear in its log, checked as
 * `sealtrail/core/receipt.py` checks them.
 *
 * A v2 receipt (what `accepted[i].receipt` carries) is
 *
 * ```
 * sealtrail.dev/receipt-proof/v2
 * event <event_id>
 * digest <payload_digest>
 * index <leaf index>
 * <base64 proof hash, the leaf's sibling first>   (zero or more lines)
 * <empty line>
 * <the signed batch note: sealtrail.dev/receipt/v2, log, time (Unix ms), size, root>
 * ```
 *
 * The batch's leaves are `event <event_id>\ndigest <payload_digest>\n` in batch order, hashed as
 * RFC 6962 leaves. The earlier single-event form (a note whose text is `sealtrail.dev/receipt/v1`,
 * `event`, `log`, `digest`, `time`) stays verifiable.
 */

import { asText, b64decode, utf8 } from "./encoding.ts";
import { NoteError } from "./errors.ts";
import { leafHash, verifyInclusion } from "./merkle.ts";
import { openNote, parseNote, type Verifier } from "./note.ts";

export const RECEIPT_ORIGIN = "sealtrail.dev/receipt/v1";
export const BATCH_ORIGIN = "sealtrail.dev/receipt/v2";
export const RECEIPT_FORMAT = "sealtrail.dev/receipt-proof/v2";
export const MAX_PROOF_HASHES = 63;

const EVENT_ID = "[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}";
const LOG = "[a-z0-9][a-z0-9-]{0,62}";
const DIGEST = "blake3:[0-9a-f]{64}";
const TIME = "0|[1-9][0-9]{0,15}";
const HASH_B64 = "[A-Za-z0-9+/]{43}=";
const V1_TEXT = new RegExp(
  `^sealtrail\\.dev/receipt/v1\\nevent (?<eventId>[0-9a-f-]{36})\\nlog (?<log>${LOG})\\n` +
  `digest (?<digest>${DIGEST})\\ntime (?<time>${TIME})\\n$`,
);
const BATCH_TEXT = new RegExp(
  `^sealtrail\\.dev/receipt/v2\\nlog (?<log>${LOG})\\ntime (?<time>${TIME})\\n` +
  `size (?<size>[1-9][0-9]{0,18})\\nroot (?<root>${HASH_B64})\\n$`,
);
const PROOF_HEAD = new RegExp(
  `^sealtrail\\.dev/receipt-proof/v2\\nevent (?<eventId>${EVENT_ID})\\ndigest (?<digest>${DIGEST})\\n` +
  `index (?<index>0|[1-9][0-9]{0,18})\\n(?<proof>(?:${HASH_B64}\\n){0,${MAX_PROOF_HASHES}})\\n`,
);

/** What a receipt promises. */
export interface Receipt {
  eventId: string;
  log: string;
  digest: string;
  /** The accepted time, Unix milliseconds. */
  timeMs: number;
}

/** What a batch note commits to. */
export interface BatchHead {
  log: string;
  timeMs: number;
  size: bigint;
  root: Uint8Array;
}

/** A parsed (not yet verified) v2 receipt. */
export interface ReceiptProof {
  eventId: string;
  digest: string;
  index: bigint;
  proof: Uint8Array[];
  note: string;
}

/** The leaf data of one event in its batch's receipt tree. */
export function receiptLeafData(eventId: string, digest: string): Uint8Array {
  return utf8(`event ${eventId}\ndigest ${digest}\n`);
}

/** Parse a v1 receipt's note text; throws {@link NoteError} if it is not exactly the v1 form. */
export function parseReceiptText(text: string): Receipt {
  const g = V1_TEXT.exec(text)?.groups;
  if (!g) throw new NoteError("not a sealtrail receipt v1 text");
  return { eventId: g.eventId!, log: g.log!, digest: g.digest!, timeMs: Number(g.time) };
}

/** Parse a batch note's text; throws {@link NoteError} if it is not exactly the v2 form. */
export function parseBatchText(text: string): BatchHead {
  const g = BATCH_TEXT.exec(text)?.groups;
  if (!g) throw new NoteError("not a sealtrail receipt v2 batch text");
  return { log: g.log!, timeMs: Number(g.time), size: BigInt(g.size!), root: b64decode(g.root!, "receipt root") };
}

/** Parse a v2 receipt (signatures NOT checked); throws {@link NoteError} if anything is malformed. */
export function parseReceiptProof(data: string | Uint8Array): ReceiptProof {
  const text = asText(data, "receipt");
  const m = PROOF_HEAD.exec(text);
  if (!m?.groups) throw new NoteError("not a sealtrail receipt v2");
  const g = m.groups;
  const proof = g.proof!.split("\n").slice(0, -1).map((line) => b64decode(line, "proof hash"));
  const note = text.slice(m[0].length);
  parseBatchText(parseNote(note).text);
  return { eventId: g.eventId!, digest: g.digest!, index: BigInt(g.index!), proof, note };
}

/**
 * Check a receipt against trusted keys (ingest's `receipt` key from `GET /v1/keys`) and return
 * what it promises. Accepts the batch form (v2) and the single-event note (v1). Throws
 * {@link NoteError} when malformed, {@link SignatureError} when no trusted key signed it (or a
 * trusted key's signature fails) and {@link InvalidProofError} when the event is not the leaf at
 * its index under the signed root and size.
 */
export function verifyReceipt(receipt: string | Uint8Array, verifiers: Iterable<Verifier>): Receipt {
  const text = asText(receipt, "receipt");
  if (!text.startsWith(RECEIPT_FORMAT)) return parseReceiptText(openNote(text, verifiers).text);
  const parsed = parseReceiptProof(text);
  const batch = parseBatchText(openNote(parsed.note, verifiers).text);
  verifyInclusion(leafHash(receiptLeafData(parsed.eventId, parsed.digest)), parsed.index, batch.size, parsed.proof, batch.root);
  return { eventId: parsed.eventId, log: batch.log, digest: parsed.digest, timeMs: batch.timeMs };
}
