/**
 * One error hierarchy, rooted in {@link SealtrailError}, mirroring the Python core's
 * `sealtrail.errors`. No message of this package ever holds an API token or a payload.
 */

export class SealtrailError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Input that is not in its published form (an event, a key string, a setting). */
export class InvalidInputError extends SealtrailError {}

/** Malformed note, checkpoint, receipt or proof text. */
export class NoteError extends SealtrailError {}

/** Something that was checked did not hold. */
export class VerificationError extends SealtrailError {}

/** A Merkle inclusion or consistency proof does not lead to its root. */
export class InvalidProofError extends VerificationError {}

/** No trusted key signed a note, or a trusted key's signature does not verify. */
export class SignatureError extends VerificationError {}

/** A newer checkpoint is not shown to extend an older one. */
export class InconsistentCheckpointError extends VerificationError {}

/** Events could be neither delivered nor spooled; `status`, `title` and `detail` name the last answer. */
export class DeliveryError extends SealtrailError {
  readonly status: number | null;
  readonly title: string;
  readonly detail: string;

  constructor(message: string, init: { status?: number | null; title?: string; detail?: string } = {}) {
    super(message);
    this.status = init.status ?? null;
    this.title = init.title ?? "";
    this.detail = init.detail ?? "";
  }
}

/** The spool holds `maxBytes` already; the caller must keep the batch or refuse new events. */
export class SpoolFullError extends SealtrailError {}

/** Another live process holds the spool directory. */
export class SpoolLockedError extends SealtrailError {}
