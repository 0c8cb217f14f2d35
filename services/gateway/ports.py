"""The gateway's storage ports: agent keys, step-up approvals, rate-limit buckets, upstream
credentials (sealed), server health and server status.

One store is shared by every gateway process of a deployment (PostgreSQL, or a SQLite file for
gateways on one machine), so that keys, approvals and limits are one policy. Times are Unix seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from services.gateway.config import RateLimit
from services.gateway.pinning import Change, Listed, Pin

ApprovalStatus = Literal["pending", "granted", "refused", "consumed"]
CredentialKind = Literal["bearer", "header", "env"]
CredentialState = Literal["pending", "current", "retired", "failed"]
HealthState = Literal["healthy", "unhealthy"]
ServerState = Literal["active", "inactive"]


@dataclass(frozen=True, slots=True)
class AgentKey:
    key_id: str
    agent: str
    secret_hash: str
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None

    def usable(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


@dataclass(frozen=True, slots=True)
class Approval:
    approval_id: str
    fingerprint: str
    """A hash of (agent, server, tool, arguments): a retry of the same call finds its hold."""
    agent: str
    server: str
    tool: str
    call_event_id: str
    created_at: float
    expires_at: float
    status: ApprovalStatus = "pending"
    decided_by: str | None = None
    reason: str | None = None
    decided_at: float | None = None

    def expired(self, now: float) -> bool:
        return self.status == "pending" and now >= self.expires_at


class ApprovalStateError(Exception):
    """An approval was decided twice, or after it expired (adapters raise it; the caller words it)."""


@dataclass(frozen=True, slots=True, repr=False)
class SealedCredential:
    """One version of a server's credential as stored: the secret sealed under a data key that is
    itself wrapped by the KEK (see :mod:`services.gateway.credentials`); never the secret in clear."""

    server: str
    version: int
    kind: CredentialKind
    name: str
    """The header (``header``), environment variable (``env``) or ``Authorization`` (``bearer``)."""
    state: CredentialState
    kek_id: str
    key_id: str
    wrapped_key: bytes
    sealed: bytes
    created_at: float
    activated_at: float | None = None
    retired_at: float | None = None
    checked_at: float | None = None
    check_status: str | None = None
    """``ok``, ``credential_rejected``, ``unreachable``, ... of the newest health check made with it."""

    def __repr__(self) -> str:
        return (f"SealedCredential(server={self.server!r}, version={self.version}, kind={self.kind!r}, "
                f"name={self.name!r}, state={self.state!r}, sealed=<{len(self.sealed)} bytes>)")


@dataclass(frozen=True, slots=True)
class ServerHealth:
    server: str
    state: HealthState
    failures: int
    """Consecutive failed checks (0 after a passing one)."""
    checked_at: float
    status: str
    """``ok`` or the failure's kind: ``credential_rejected``, ``unreachable``, ``timeout``, ``protocol_error``."""
    latency_ms: int | None = None
    tools: int | None = None


@dataclass(frozen=True, slots=True)
class StatusChange:
    server: str
    state: ServerState
    reason: str
    by: str
    at: float


class CredentialStore(Protocol):
    """Sealed upstream credentials, versioned per server.

    - ``add_credential`` MUST give the new row the next version of its server (1, 2, ...), atomically
      across processes, and store it as given (``pending`` or ``current``).
    - ``activate_credential`` MUST, in one transaction, make the version ``current`` and the
      previous ``current`` one ``retired`` (its sealed value erased); so a server never has two
      current versions and a reader never sees none once one was activated.
    - ``fail_credential`` turns a ``pending`` version into ``failed`` (its sealed value erased).
    - The sealed bytes are opaque to the store; it MUST NOT hold or log a secret in clear.
    """

    async def add_credential(self, cred: SealedCredential) -> SealedCredential:
        """Store ``cred`` under the server's next version; the stored row is returned."""
        ...

    async def activate_credential(self, server: str, version: int, at: float) -> bool:
        """True when the version existed and was pending or current."""
        ...

    async def fail_credential(self, server: str, version: int, at: float) -> bool: ...

    async def current_credential(self, server: str) -> SealedCredential | None: ...

    async def get_credential(self, server: str, version: int) -> SealedCredential | None: ...

    async def list_credentials(self, server: str | None = None) -> list[SealedCredential]:
        """Every version (newest last per server), sealed values included; callers show metadata only."""
        ...

    async def note_credential_check(self, server: str, version: int, at: float, status: str) -> None: ...


class HealthStore(Protocol):
    """Each server's health, shared by the gateway processes of a deployment.

    - ``record_health`` MUST count consecutive failures atomically (two processes failing at once
      add two) and reset the count on a passing check; the state is ``unhealthy`` once
      ``failures >= unhealthy_after`` and ``healthy`` after one passing check.
    """

    async def record_health(self, server: str, *, ok: bool, status: str, at: float, latency_ms: int | None,
                            tools: int | None, unhealthy_after: int) -> ServerHealth: ...

    async def get_health(self, server: str) -> ServerHealth | None: ...

    async def list_health(self) -> list[ServerHealth]: ...


class StatusStore(Protocol):
    """Operator status of servers (enabled or disabled), with its whole history.

    - ``set_server_state`` MUST append to the history and change the state in one transaction, and
      only when the state changes (it returns False, appending nothing, for no change).
    - A server with no history is active. History is never deleted.
    """

    async def set_server_state(self, change: StatusChange) -> bool: ...

    async def server_state(self, server: str) -> StatusChange | None:
        """The newest change, or None when the server was never disabled."""
        ...

    async def inactive_servers(self) -> dict[str, StatusChange]: ...

    async def status_history(self, server: str | None = None) -> list[StatusChange]:
        """Oldest first."""
        ...


class PinStateError(Exception):
    """A tool pin has nothing to approve: its current definition is the approved one."""


class PinStore(Protocol):
    """Tool pins (see :mod:`services.gateway.pinning`): per server and tool, the hash and canonical JSON
    of the definition the upstream lists, the approved hash, and whether the tool is still listed.

    - ``sync_pins`` MUST read, compare (:func:`~services.gateway.pinning.reconcile`) and write a
      server's pins in one transaction that excludes every other ``sync_pins`` of the same server, so
      when several gateways see the same listing exactly one of them gets the changes (and records
      them); the others get an empty list.
    - ``approve_pin`` MUST set the approved hash to the current one atomically; it raises
      ``KeyError`` for an unknown pin and :class:`PinStateError` when there is nothing to approve.
    - Pins are never deleted: a removed tool keeps its pin with ``listed`` false.
    """

    async def sync_pins(self, server: str, listed: list[Listed], *, at: float, event_id: str) -> list[Change]:
        """Pin a fresh listing; the changes it made (``event_id`` is stored as their event)."""
        ...

    async def list_pins(self, server: str | None = None) -> list[Pin]:
        """Ordered by server and tool."""
        ...

    async def approve_pin(self, server: str, tool: str, *, by: str, at: float) -> Pin: ...


class GatewayStore(CredentialStore, HealthStore, StatusStore, PinStore, Protocol):
    """Agent keys (hashed), approvals and buckets.

    - Keys: ``secret_hash`` only, never a token. ``create_key`` MUST refuse a duplicate ``key_id``.
    - Approvals: ``decide_approval`` MUST change a ``pending``, unexpired approval exactly once, even
      when two approvers race (one wins, the other gets :class:`ApprovalStateError`);
      ``consume_approval`` MUST turn a ``granted`` approval into ``consumed`` exactly once across all
      processes (it returns False for every later caller), so one approval releases one call.
    - Buckets: ``take`` MUST be atomic across processes: the refill and the draw happen under one
      lock or transaction, so two gateways never spend the same token.
    - Every method is durable when it returns.
    """

    async def create_key(self, key: AgentKey) -> None: ...

    async def get_key(self, key_id: str) -> AgentKey | None: ...

    async def list_keys(self, agent: str | None = None) -> list[AgentKey]: ...

    async def revoke_key(self, key_id: str, at: float) -> bool:
        """True when the key existed and was not yet revoked."""
        ...

    async def expire_key(self, key_id: str, at: float) -> bool:
        """Set the key's expiry to ``at`` (earlier only); True when the key exists and is live."""
        ...

    async def create_approval(self, approval: Approval) -> None: ...

    async def get_approval(self, approval_id: str) -> Approval | None: ...

    async def find_approval(self, fingerprint: str) -> Approval | None:
        """The newest approval of the call that is not yet consumed, or None."""
        ...

    async def list_approvals(self, status: ApprovalStatus | None = None) -> list[Approval]: ...

    async def decide_approval(self, approval_id: str, *, granted: bool, by: str, reason: str | None,
                              at: float) -> Approval: ...

    async def consume_approval(self, approval_id: str, *, status: ApprovalStatus = "granted") -> bool:
        """Retire an approval that is in ``status`` (granted: it releases its call; refused or pending:
        its outcome was reported, so a retry asks again); True for exactly one caller."""
        ...

    async def take(self, bucket: str, rate: RateLimit, now: float) -> tuple[bool, float]:
        """Draw one token: ``(allowed, retry_after_s)``."""
        ...

    async def ping(self) -> None:
        """Raise when the store cannot be reached."""
        ...

    async def close(self) -> None: ...

