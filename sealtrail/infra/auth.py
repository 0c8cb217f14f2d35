"""Tenants, API keys, roles and scopes (DESIGN section 7): the port and the pure logic around it.

Token format: ``st_<key_id>_<secret>``. ``key_id`` is 16 random lowercase hex digits (it names the
key in lists, logs and revocations); ``secret`` is 32 random bytes in unpadded base64url. Only
SHA-256(secret bytes) is stored; the token is shown once, at creation, and never logged. A key is
bound to one tenant and one role; the role fixes its scopes.

Storage adapters implement :class:`AuthStore` (PostgreSQL in :mod:`sealtrail.infra.auth_postgres`,
SQLite in :mod:`sealtrail.infra.auth_sqlite`; both pass ``tests/contract/auth_contract.py``).
Everything else here is storage-agnostic.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from sealtrail.errors import AuthenticationError, InvalidInputError, PermissionDeniedError

TOKEN_PREFIX = "st_"
KEY_ID_HEX_CHARS = 16
SECRET_BYTES = 32
INDEX_KEY_BYTES = 32

_TENANT_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# Labels become the gateway_id of gateway keys, which is written in clear into the log header,
# so they are identifiers (no spaces, no personal data by construction), not free text.
_LABEL_RE = re.compile(r"^(|[a-z0-9][a-z0-9._-]{0,62})$")
_KEY_ID_RE = re.compile(rf"^[0-9a-f]{{{KEY_ID_HEX_CHARS}}}$")
_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")


class Scope(StrEnum):
    EVENTS_WRITE = "events:write"
    CALLS_READ = "calls:read"
    CALLS_REVEAL = "calls:reveal"
    ANALYTICS_READ = "analytics:read"
    PROOFS_READ = "proofs:read"
    SUBJECTS_EXPORT = "subjects:export"
    SUBJECTS_ERASE = "subjects:erase"
    ADMIN = "admin"


class Role(StrEnum):
    GATEWAY = "gateway"
    INVESTIGATOR = "investigator"
    DPO = "dpo"
    AUDITOR = "auditor"
    OPERATOR = "operator"


# The operator manages keys but has no data scope: it can never read a payload.
ROLE_SCOPES: dict[Role, frozenset[Scope]] = {
    Role.GATEWAY: frozenset({Scope.EVENTS_WRITE, Scope.PROOFS_READ}),
    Role.INVESTIGATOR: frozenset(
        {Scope.CALLS_READ, Scope.CALLS_REVEAL, Scope.ANALYTICS_READ, Scope.PROOFS_READ}
    ),
    Role.DPO: frozenset({Scope.SUBJECTS_EXPORT, Scope.SUBJECTS_ERASE, Scope.CALLS_READ}),
    Role.AUDITOR: frozenset({Scope.PROOFS_READ}),
    Role.OPERATOR: frozenset({Scope.ADMIN}),
}

LOG_CONTENT_ROLES: frozenset[Role] = frozenset({Role.AUDITOR, Role.INVESTIGATOR})
"""The roles whose ``proofs:read`` also reads a log's contents (its entries, its erasure events).
A gateway reads checkpoints and the proofs of its events, never the entries other gateways of its
tenant sent (DESIGN, section 1)."""


def check_tenant_name(name: str) -> str:
    if not _TENANT_RE.match(name):
        raise InvalidInputError("tenant names are 1-63 of [a-z0-9-], starting with a letter or digit")
    return name


def check_label(label: str) -> str:
    if not _LABEL_RE.match(label):
        raise InvalidInputError("labels are empty or 1-63 of [a-z0-9._-], starting with a letter or digit")
    return label


@dataclass(frozen=True, slots=True)
class Tenant:
    """A tenant; its log id is its ``tenant_id``. The index key is stored wrapped by the KEK."""

    tenant_id: str
    created_at: datetime
    wrapped_index_key: bytes
    kek_id: str
    retention_months: int | None = None


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored API key (never its token)."""

    key_id: str
    tenant_id: str
    role: Role
    secret_hash: bytes
    label: str
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def scopes(self) -> frozenset[Scope]:
        return ROLE_SCOPES[self.role]

    def usable_at(self, now: datetime) -> bool:
        if self.revoked_at is not None and self.revoked_at <= now:
            return False
        return self.expires_at is None or now < self.expires_at

    def state_at(self, now: datetime) -> str:
        if self.revoked_at is not None and self.revoked_at <= now:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "active"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's tenant, role and scopes. ``gateway_id`` is stamped on events."""

    key_id: str
    tenant_id: str
    role: Role
    label: str

    @property
    def scopes(self) -> frozenset[Scope]:
        return ROLE_SCOPES[self.role]

    @property
    def gateway_id(self) -> str:
        """The key's label when set (stable across rotation), else its key id."""
        return self.label or self.key_id

    def require(self, scope: Scope) -> None:
        """Raise PermissionDeniedError unless this principal's role grants ``scope``."""
        if scope not in self.scopes:
            raise PermissionDeniedError(f"role {self.role.value} lacks scope {scope.value}")

    def require_log_contents(self) -> None:
        """Raise PermissionDeniedError unless this principal may read a log's entries."""
        self.require(Scope.PROOFS_READ)
        if self.role not in LOG_CONTENT_ROLES:
            raise PermissionDeniedError(f"role {self.role.value} reads proofs, not a log's entries")

    def reads_proof_of(self, header: Mapping[str, object]) -> bool:
        """Whether this principal may read the proof of the logged event with ``header``: a role in
        LOG_CONTENT_ROLES any event's, a gateway only those its own gateway sent."""
        if self.role in LOG_CONTENT_ROLES:
            return Scope.PROOFS_READ in self.scopes
        return Scope.PROOFS_READ in self.scopes and header.get("gateway_id") == self.gateway_id

    @classmethod
    def of(cls, key: ApiKey) -> Principal:
        return cls(key_id=key.key_id, tenant_id=key.tenant_id, role=key.role, label=key.label)


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A freshly created key with its token. The token exists only here and is shown once."""

    key: ApiKey
    token: str

    def __repr__(self) -> str:  # keep the token out of reprs, tracebacks and logs
        return f"IssuedKey(key_id={self.key.key_id!r}, token=<redacted>)"


def new_key_id() -> str:
    return secrets.token_hex(KEY_ID_HEX_CHARS // 2)


def new_secret() -> tuple[str, bytes]:
    """A fresh secret as (base64url text, SHA-256 of its bytes)."""
    raw = secrets.token_bytes(SECRET_BYTES)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode(), hashlib.sha256(raw).digest()


def format_token(key_id: str, secret: str) -> str:
    return f"{TOKEN_PREFIX}{key_id}_{secret}"


def parse_token(token: str) -> tuple[str, bytes]:
    """Split a token into (key_id, SHA-256 of the secret). Raise AuthenticationError if malformed.

    The error message never repeats any part of the token.
    """
    if not token.startswith(TOKEN_PREFIX):
        raise AuthenticationError("malformed API key")
    key_id, sep, secret = token[len(TOKEN_PREFIX):].partition("_")
    if not sep or not _KEY_ID_RE.match(key_id) or not _SECRET_RE.match(secret):
        raise AuthenticationError("malformed API key")
    try:
        raw = base64.urlsafe_b64decode(secret + "=")
    except (binascii.Error, ValueError) as e:
        raise AuthenticationError("malformed API key") from e
    return key_id, hashlib.sha256(raw).digest()


def secret_matches(stored_hash: bytes, presented_hash: bytes) -> bool:
    """Constant-time comparison of two secret hashes."""
    return hmac.compare_digest(stored_hash, presented_hash)


class AuthStore(Protocol):
    """Storage of tenants and API keys.

    Implementations MUST store only secret hashes, never tokens; MUST raise ConflictError when a
    tenant or key id already exists and NotFoundError for an unknown tenant or key; MUST make
    ``revoke`` idempotent (an earlier revocation time is kept) and ``replace`` atomic (either
    the new key exists and the old one is revoked, or neither happened). Driver errors MUST be
    translated into :mod:`sealtrail.errors` types (UnavailableError when unreachable).
    """

    async def insert_tenant(self, tenant: Tenant) -> None: ...

    async def get_tenant(self, tenant_id: str) -> Tenant:
        """The tenant, or NotFoundError."""
        ...

    async def list_tenants(self) -> Sequence[Tenant]: ...

    async def insert_key(self, key: ApiKey) -> None: ...

    async def get_key(self, key_id: str) -> ApiKey | None:
        """The key, revoked or expired ones included; None when unknown."""
        ...

    async def list_keys(self, tenant_id: str) -> Sequence[ApiKey]:
        """Every key of the tenant, oldest first."""
        ...

    async def revoke_key(self, key_id: str, *, at: datetime) -> ApiKey:
        """Mark revoked at ``at`` (kept if already revoked earlier); NotFoundError when unknown."""
        ...

    async def replace_key(self, old_key_id: str, new: ApiKey, *, at: datetime) -> None:
        """In one transaction: insert ``new`` and revoke ``old_key_id`` at ``at``."""
        ...

    async def ping(self) -> None:
        """Return when the store is reachable; raise UnavailableError otherwise."""
        ...
