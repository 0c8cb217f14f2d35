"""The auth-store contract (tenants and API keys), run against every adapter.

Subclass :class:`AuthStoreContract` and override the ``auth`` fixture with a store over a fresh,
migrated database; nothing else.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from sealtrail.errors import ConflictError, InvalidInputError, NotFoundError
from sealtrail.infra.auth import ApiKey, AuthStore, Role, Tenant, new_key_id, new_secret

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _tenant(name: str, *, retention: int | None = None) -> Tenant:
    return Tenant(name, T0, os.urandom(72), "kek-1", retention)


def _key(tenant: str, *, at: datetime = T0, role: Role = Role.GATEWAY, label: str = "gw-1") -> ApiKey:
    return ApiKey(new_key_id(), tenant, role, new_secret()[1], label, at)


class AuthStoreContract:
    """What every :class:`~sealtrail.infra.auth.AuthStore` adapter guarantees."""

    @pytest.fixture
    def auth(self) -> AuthStore:
        raise NotImplementedError("an adapter's test class overrides the auth fixture")

    async def test_tenants_round_trip(self, auth: AuthStore) -> None:
        """A tenant reads back exactly as written; tenants list in name order."""
        beta, acme = _tenant("beta", retention=6), _tenant("acme")
        await auth.insert_tenant(beta)
        await auth.insert_tenant(acme)
        assert await auth.get_tenant("beta") == beta
        assert list(await auth.list_tenants()) == [acme, beta]

    async def test_duplicate_and_unknown_tenants(self, auth: AuthStore) -> None:
        """A taken tenant name is a ConflictError; an unknown one a NotFoundError."""
        await auth.insert_tenant(_tenant("acme"))
        with pytest.raises(ConflictError):
            await auth.insert_tenant(_tenant("acme"))
        with pytest.raises(NotFoundError):
            await auth.get_tenant("nope")

    async def test_the_database_refuses_malformed_tenant_names(self, auth: AuthStore) -> None:
        """Behind KeyAdmin's checks, the database itself refuses a malformed tenant name."""
        for name in ("", "Acme", "-acme", "ac me", "a" * 64, "acme_1"):
            with pytest.raises(InvalidInputError):
                await auth.insert_tenant(_tenant(name))
        assert list(await auth.list_tenants()) == []

    async def test_keys_round_trip_and_list_oldest_first(self, auth: AuthStore) -> None:
        """Keys read back exactly as written, per tenant, oldest first; an unknown id reads as None."""
        await auth.insert_tenant(_tenant("acme"))
        await auth.insert_tenant(_tenant("beta"))
        late, early = _key("acme", at=T0 + timedelta(seconds=5)), _key("acme", role=Role.AUDITOR, label="")
        expiring = ApiKey(new_key_id(), "beta", Role.DPO, new_secret()[1], "dpo.1", T0, T0 + timedelta(days=1))
        for key in (late, early, expiring):
            await auth.insert_key(key)
        assert await auth.get_key(early.key_id) == early
        assert await auth.get_key(expiring.key_id) == expiring
        assert await auth.get_key(new_key_id()) is None
        assert list(await auth.list_keys("acme")) == [early, late]
        assert list(await auth.list_keys("gamma")) == []

    async def test_key_conflicts_and_unknown_tenants(self, auth: AuthStore) -> None:
        """A taken key id is a ConflictError; a key of an unknown tenant a NotFoundError."""
        await auth.insert_tenant(_tenant("acme"))
        key = _key("acme")
        await auth.insert_key(key)
        with pytest.raises(ConflictError):
            await auth.insert_key(ApiKey(key.key_id, "acme", Role.DPO, new_secret()[1], "", T0))
        with pytest.raises(NotFoundError):
            await auth.insert_key(_key("nope"))

    async def test_the_database_refuses_malformed_labels(self, auth: AuthStore) -> None:
        """Labels become gateway ids in clear; the database refuses anything but identifiers."""
        await auth.insert_tenant(_tenant("acme"))
        for label in ("Gateway", "gw 1", "-gw", "g" * 64):
            with pytest.raises(InvalidInputError):
                await auth.insert_key(_key("acme", label=label))
        assert list(await auth.list_keys("acme")) == []

    async def test_revocation_keeps_the_earliest_time(self, auth: AuthStore) -> None:
        """Revoking is idempotent and keeps the earliest revocation time; unknown keys are NotFound."""
        await auth.insert_tenant(_tenant("acme"))
        key = _key("acme")
        await auth.insert_key(key)
        t1 = T0 + timedelta(hours=1)
        assert (await auth.revoke_key(key.key_id, at=t1)).revoked_at == t1
        assert (await auth.revoke_key(key.key_id, at=t1 + timedelta(hours=1))).revoked_at == t1
        assert (await auth.revoke_key(key.key_id, at=T0)).revoked_at == T0
        with pytest.raises(NotFoundError):
            await auth.revoke_key(new_key_id(), at=t1)

    async def test_replace_is_atomic(self, auth: AuthStore) -> None:
        """Rotation inserts the new key and revokes the old one together, or does neither."""
        await auth.insert_tenant(_tenant("acme"))
        old, new, at = _key("acme"), _key("acme"), T0 + timedelta(minutes=1)
        await auth.insert_key(old)
        with pytest.raises(NotFoundError):
            await auth.replace_key(new_key_id(), new, at=at)
        assert await auth.get_key(new.key_id) is None
        with pytest.raises(ConflictError):
            await auth.replace_key(old.key_id, old, at=at)
        assert (await auth.get_key(old.key_id)).revoked_at is None  # type: ignore[union-attr]
        await auth.replace_key(old.key_id, new, at=at)
        assert (await auth.get_key(old.key_id)).revoked_at == at  # type: ignore[union-attr]
        assert await auth.get_key(new.key_id) == new

    async def test_ping(self, auth: AuthStore) -> None:
        """A reachable store answers ping."""
        await auth.ping()
