"""The gateway's storage port: agent keys, step-up approvals and rate-limit buckets.

One store is shared by every gateway process of a deployment (PostgreSQL, or a SQLite file for
gateways on one machine), so that keys, approvals and limits are one policy. Times are Unix seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from services.gateway.config import RateLimit

ApprovalStatus = Literal["pending", "granted", "refused", "consumed"]


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


class GatewayStore(Protocol):
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
