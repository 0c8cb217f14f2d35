"""Managing and checking API keys: tenant and key administration, and request authentication.

Administration takes an *actor*: ``None`` is the local command line, which already holds the
database credentials and the KEK and may act on every tenant; a :class:`Principal` must hold the
``admin`` scope (the operator role) and acts on its own tenant only. Another tenant's keys look
exactly like missing ones (NotFoundError), so an operator learns nothing about other tenants.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sealtrail.errors import AuthenticationError, NotFoundError, PermissionDeniedError
from sealtrail.infra.auth import (
    INDEX_KEY_BYTES,
    ApiKey,
    AuthStore,
    IssuedKey,
    Principal,
    Role,
    Scope,
    Tenant,
    check_label,
    check_tenant_name,
    format_token,
    new_key_id,
    new_secret,
    parse_token,
    secret_matches,
)

DEFAULT_AUTH_CACHE_TTL_S = 5.0
_MAX_CACHED_KEYS = 10_000

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class KeyWrapper(Protocol):
    """What tenant creation needs of the KEK: wrap 32 random bytes, name the KEK that did it."""

    @property
    def kek_id(self) -> str: ...

    def wrap(self, key: bytes) -> bytes: ...


class KeyAdmin:
    """Tenant and API-key administration over an :class:`AuthStore`."""

    def __init__(self, *, store: AuthStore, clock: Clock = utc_now) -> None:
        self._store = store
        self._clock = clock

    async def create_tenant(self, name: str, *, kek: KeyWrapper, actor: Principal | None = None) -> Tenant:
        """Create a tenant with a fresh random index key wrapped by ``kek``. Local CLI only."""
        if actor is not None:
            raise PermissionDeniedError("tenants are created with the local admin command line")
        tenant = Tenant(
            tenant_id=check_tenant_name(name), created_at=self._clock(),
            wrapped_index_key=kek.wrap(secrets.token_bytes(INDEX_KEY_BYTES)), kek_id=kek.kek_id,
        )
        await self._store.insert_tenant(tenant)
        return tenant

    async def list_tenants(self, *, actor: Principal | None = None) -> Sequence[Tenant]:
        """Every tenant for the local CLI; an operator sees only its own."""
        if actor is None:
            return await self._store.list_tenants()
        actor.require(Scope.ADMIN)
        return [await self._store.get_tenant(actor.tenant_id)]

    async def create_key(
        self, *, tenant: str, role: Role, label: str = "", expires_in: timedelta | None = None,
        actor: Principal | None = None,
    ) -> IssuedKey:
        """Issue a new key; the returned token is the only copy that will ever exist."""
        await self._authorize(actor, tenant)
        await self._store.get_tenant(tenant)
        issued = self._issue(tenant=tenant, role=role, label=check_label(label), expires_in=expires_in)
        await self._store.insert_key(issued.key)
        return issued

    async def revoke_key(self, key_id: str, *, actor: Principal | None = None) -> ApiKey:
        """Revoke now (idempotent)."""
        key = await self._visible_key(key_id, actor)
        return await self._store.revoke_key(key.key_id, at=self._clock())

    async def rotate_key(
        self, key_id: str, *, expires_in: timedelta | None = None, actor: Principal | None = None
    ) -> IssuedKey:
        """Issue a key with the same tenant, role and label and revoke the old one, atomically."""
        old = await self._visible_key(key_id, actor)
        issued = self._issue(tenant=old.tenant_id, role=old.role, label=old.label, expires_in=expires_in)
        await self._store.replace_key(old.key_id, issued.key, at=self._clock())
        return issued

    async def list_keys(self, tenant: str, *, actor: Principal | None = None) -> Sequence[ApiKey]:
        await self._authorize(actor, tenant)
        await self._store.get_tenant(tenant)
        return await self._store.list_keys(tenant)

    def _issue(self, *, tenant: str, role: Role, label: str, expires_in: timedelta | None) -> IssuedKey:
        now = self._clock()
        key_id = new_key_id()
        secret, secret_hash = new_secret()
        key = ApiKey(
            key_id=key_id, tenant_id=tenant, role=Role(role), secret_hash=secret_hash, label=label,
            created_at=now, expires_at=None if expires_in is None else now + expires_in,
        )
        return IssuedKey(key=key, token=format_token(key_id, secret))

    async def _visible_key(self, key_id: str, actor: Principal | None) -> ApiKey:
        key = await self._store.get_key(key_id)
        if key is None:
            raise NotFoundError("no such API key")
        await self._authorize(actor, key.tenant_id)
        return key

    async def _authorize(self, actor: Principal | None, tenant: str) -> None:
        if actor is None:
            return
        actor.require(Scope.ADMIN)
        if actor.tenant_id != tenant:
            raise NotFoundError("no such tenant or API key")


class Authenticator:
    """Turns an ``Authorization`` header into a :class:`Principal`.

    Key rows are cached for ``cache_ttl_s`` seconds (default 5): a revocation or expiry takes
    effect within that time on every ingest process. The cache holds key rows (hashes), never
    tokens; the secret is compared in constant time on every request.
    """

    def __init__(
        self, *, store: AuthStore, cache_ttl_s: float = DEFAULT_AUTH_CACHE_TTL_S, clock: Clock = utc_now
    ) -> None:
        self._store = store
        self._ttl = cache_ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[ApiKey, float]] = {}

    async def authenticate(self, authorization: str | None) -> Principal:
        """Return the caller, or raise AuthenticationError (missing, malformed, unknown, revoked, expired)."""
        if not authorization:
            raise AuthenticationError("missing Authorization: Bearer <API key>")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError("Authorization must be 'Bearer <API key>'")
        key_id, presented = parse_token(token.strip())
        key = await self._lookup(key_id)
        if key is None or not secret_matches(key.secret_hash, presented):
            raise AuthenticationError("unknown API key")
        state = key.state_at(self._clock())
        if state != "active":
            raise AuthenticationError(f"API key is {state}")
        return Principal.of(key)

    async def recheck(self, principal: Principal) -> Principal:
        """``principal`` again if its key is still active (a console session stands for a key that
        signed in earlier); AuthenticationError once the key is revoked, expired or gone. The key
        row is cached as for :meth:`authenticate`."""
        key = await self._lookup(principal.key_id)
        if key is None:
            raise AuthenticationError("unknown API key")
        state = key.state_at(self._clock())
        if state != "active":
            raise AuthenticationError(f"API key is {state}")
        return Principal.of(key)

    def invalidate(self, key_id: str | None = None) -> None:
        """Drop one cached key (or all): use after revoking in this process."""
        if key_id is None:
            self._cache.clear()
        else:
            self._cache.pop(key_id, None)

    async def _lookup(self, key_id: str) -> ApiKey | None:
        now = time.monotonic()
        hit = self._cache.get(key_id)
        if hit is not None and now - hit[1] < self._ttl:
            return hit[0]
        key = await self._store.get_key(key_id)
        if key is not None and self._ttl > 0:
            if len(self._cache) >= _MAX_CACHED_KEYS:
                self._cache.clear()
            self._cache[key_id] = (key, now)
        return key
