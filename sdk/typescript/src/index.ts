/**
 * `@sealtrail/sdk`: typed builders for the v1 gateway events, a batching client with retries
 * and a write-ahead spool, and offline verification of receipts, checkpoints and proofs.
 * The MCP integration is in `@sealtrail/sdk/mcp`.
 */

export { Backoff, MAX_RETRY_AFTER_S, parseRetryAfter, type BackoffOptions } from "./backoff.ts";
export { canonicalJson, toolDefHash } from "./canonical.ts";
export {
  checkConsistency, MAX_TREE_SIZE, parseCheckpoint, TrustedKeys, verifierFromVkey,
  type Checkpoint, type TrustedKey, type VerifiedCheckpoint,
} from "./checkpoint.ts";
export {
  DEFAULT_ATTEMPTS, DEFAULT_BATCH_MAX, DEFAULT_FLUSH_INTERVAL_MS, DEFAULT_SPOOL_MAX_BYTES, DEFAULT_TIMEOUT_MS,
  Failure, SealtrailClient, type Accepted, type ClientOptions, type ClientStats, type Rejected,
} from "./client.ts";
export { COSIGNATURE_TYPE, CosignatureVerifier, cosignedMessage, signatureTimestamp } from "./cosignature.ts";
export { b64decode, b64encode } from "./encoding.ts";
export {
  DeliveryError, InconsistentCheckpointError, InvalidInputError, InvalidProofError, NoteError, SealtrailError,
  SignatureError, SpoolFullError, SpoolLockedError, VerificationError,
} from "./errors.ts";
export * as events from "./events.ts";
export {
  approval, credentialRotation, healthCheck, rateLimit, serverStatus, timestamp, toolCall, toolList, uuid7,
} from "./events.ts";
export type {
  CallStatus, Decision, GatewayEvent, SealtrailEvent, ToolCallEvent, ToolTier,
} from "./events.ts";
export { emptyRoot, leafHash, nodeHash, rootOf, verifyConsistency, verifyInclusion } from "./merkle.ts";
export {
  computeKeyId, ED25519_TYPE, Ed25519Verifier, openNote, parseNote,
  type Note, type NoteSignature, type Verifier, type VerifiedNote,
} from "./note.ts";
export {
  BATCH_ORIGIN, parseReceiptProof, RECEIPT_FORMAT, receiptLeafData, verifyReceipt,
  type Receipt, type ReceiptProof,
} from "./receipt.ts";
export { publishedKeys, receiptVerifiers, type PublishedKey } from "./keys.ts";
export { Spool, type SpooledBatch } from "./spool.ts";
export { parseTlogProof, TLOG_PROOF_HEADER, verifyTlogProof, verifyTlogProofTrusted, type TlogProof } from "./tlogproof.ts";
