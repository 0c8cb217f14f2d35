"""One error hierarchy for the whole project.

Every error Sealtrail raises on purpose derives from :class:`SealtrailError`. Driver errors
(asyncpg, aiokafka, sqlite3) are translated into these in exactly one place, the adapter that
called the driver, with ``raise ... from e``. The HTTP edge maps them to RFC 9457 problem details
through one handler table. Messages never contain payload plaintext, tokens or keys.
"""

from __future__ import annotations


class SealtrailError(Exception):
    """Base of every error Sealtrail raises on purpose."""


# --- input -------------------------------------------------------------------------------------


class InvalidInputError(SealtrailError):
    """Input was malformed. ``pointer`` is an RFC 6901 JSON pointer to the offending field."""

    def __init__(self, detail: str, *, pointer: str = "") -> None:
        super().__init__(detail if not pointer else f"{pointer}: {detail}")
        self.detail = detail
        self.pointer = pointer


class TooLargeError(InvalidInputError):
    """A request or batch exceeds a documented size or count limit (HTTP 413)."""


class UnsupportedMediaTypeError(InvalidInputError):
    """A request body is not of a media type the route reads (HTTP 415)."""


# --- verifiable log ----------------------------------------------------------------------------


class VerificationError(SealtrailError):
    """Something did not verify. ``index`` names the first bad entry when one is known."""

    def __init__(self, detail: str, *, index: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.index = index


class IntegrityError(VerificationError):
    """Stored data that a person would be shown disagrees with the signed entry it derives from
    (a column copy, a leaf, a read model). ``log_id``, ``index`` and ``fields`` name where; never values."""

    def __init__(self, detail: str, *, log_id: str, index: int, fields: tuple[str, ...]) -> None:
        super().__init__(detail, index=index)
        self.log_id = log_id
        self.fields = fields


class InvalidProofError(VerificationError):
    """An inclusion or consistency proof does not verify, or is malformed."""


class ChainMismatchError(VerificationError):
    """A stored hash-chain value differs from its recomputation."""


class RootMismatchError(VerificationError):
    """A recomputed Merkle root differs from the one a checkpoint or batch commits to."""


class SequenceGapError(VerificationError):
    """Entry indices are not contiguous from 0."""


class InconsistentCheckpointError(VerificationError):
    """Two checkpoints of one log are not consistent; the later one must never be signed."""


class NoteError(SealtrailError):
    """A signed note, checkpoint, cosignature or tlog-proof is malformed."""


class SignatureError(VerificationError):
    """No trusted key produced a valid signature, or a signature is malformed."""


# --- keys and sealing --------------------------------------------------------------------------


class SealingError(SealtrailError):
    """A payload could not be sealed or opened (wrong key, tampered ciphertext, missing key)."""


class SubjectErasedError(SealingError):
    """A subject key was erased; the payloads that needed it can no longer be opened."""


class PeriodExpiredError(SealingError):
    """A period key expired with its retention period; that month's payloads can no longer be opened."""


class LegalHoldError(SealtrailError):
    """The subject is under legal hold and cannot be erased."""


# --- access ------------------------------------------------------------------------------------


class AuthenticationError(SealtrailError):
    """The caller presented no credential, or an unknown, expired or revoked one."""


class PermissionDeniedError(SealtrailError):
    """The caller is authenticated but its role lacks the scope the action needs."""


class NotFoundError(SealtrailError):
    """The named resource does not exist (or belongs to another tenant)."""


class ConflictError(SealtrailError):
    """The request conflicts with the current state (e.g. a name already taken)."""


class WitnessSizeError(ConflictError):
    """A witness's latest cosigned size is not the old size a request named (tlog-witness 409).

    ``size`` is the witness's size: the client retries with a consistency proof from it.
    """

    def __init__(self, detail: str, *, size: int) -> None:
        super().__init__(detail)
        self.detail = detail
        self.size = size


# --- pressure and availability -----------------------------------------------------------------


class BackpressureError(SealtrailError):
    """The service is saturated; the caller should retry after ``retry_after`` seconds (HTTP 429)."""

    def __init__(self, detail: str, *, retry_after: float = 1.0) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after


class UnavailableError(BackpressureError):
    """A dependency (Kafka, the database) is unreachable; retry later (HTTP 503)."""


class ServiceStartError(SealtrailError):
    """A local service (PostgreSQL, Kafka) needed for a run could not be started; says why."""


class CorruptLogError(SealtrailError):
    """Stored bytes of the local log fail their checksum where no crash can have torn them."""


class ConcurrentWriteError(SealtrailError):
    """Another writer advanced a log or a consumer offset first; reload state and retry."""


class DuplicateEventError(ConcurrentWriteError):
    """A commit would have logged an event id that its log already holds; nothing was committed.

    The ledger then sequences the same records again, this time looking their event ids up first.
    """


class BenchmarkError(SealtrailError):
    """A benchmark run could not measure what it set out to: requests refused, answers that do not
    match what was sent, or accepted events that never reached a signed checkpoint."""
