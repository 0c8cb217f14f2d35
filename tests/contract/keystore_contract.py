"""The key-store contract, run against every adapter.

Subclass :class:`KeyStoreContract` and override the ``store`` fixture; nothing else. Each test
uses fresh tenants, so a persistent store can be shared across tests.
"""

from __future__ import annotations

import asyncio
import secrets

import pytest

from sealtrail.core.keystore import KeyStore
from sealtrail.core.sealing import KEY_BYTES
from sealtrail.errors import InvalidInputError, PeriodExpiredError


def _tenant() -> str:
    return f"t-{secrets.token_hex(6)}"


def _ref() -> bytes:
    return secrets.token_bytes(32)


class KeyStoreContract:
    """What every :class:`KeyStore` adapter guarantees."""

    @pytest.fixture
    def store(self) -> KeyStore:
        raise NotImplementedError("an adapter's test class overrides the store fixture")

    async def test_subject_key_is_active_random_and_stable(self, store: KeyStore) -> None:
        """A subject's first key is a fresh active 32-byte key; asking again returns the same one."""
        tenant, ref = _tenant(), _ref()
        first = await store.get_or_create_subject_key(tenant, ref)
        again = await store.get_or_create_subject_key(tenant, ref)
        assert (first.kind, first.state, len(first.secret)) == ("subject", "active", KEY_BYTES)
        assert len(first.key_id) == 32
        assert again.key_id == first.key_id and again.secret == first.secret

    async def test_concurrent_subject_creators_converge(self, store: KeyStore) -> None:
        """Fifty concurrent creators of one subject's key all get the same key."""
        tenant, ref = _tenant(), _ref()
        keys = await asyncio.gather(*(store.get_or_create_subject_key(tenant, ref) for _ in range(50)))
        assert len({k.key_id for k in keys}) == 1
        assert len({k.secret for k in keys}) == 1

    async def test_concurrent_period_creators_converge(self, store: KeyStore) -> None:
        """Fifty concurrent creators of one period's key all get the same key."""
        tenant = _tenant()
        keys = await asyncio.gather(*(store.get_or_create_period_key(tenant, "2025-03") for _ in range(50)))
        assert len({k.key_id for k in keys}) == 1
        assert keys[0].kind == "period"

    async def test_distinct_subjects_and_periods_get_distinct_keys(self, store: KeyStore) -> None:
        """Keys are per subject and per period: no two share an id or a secret."""
        tenant = _tenant()
        subjects = [await store.get_or_create_subject_key(tenant, _ref()) for _ in range(5)]
        periods = [await store.get_or_create_period_key(tenant, p) for p in ("2025-01", "2025-02")]
        keys = subjects + periods
        assert len({k.key_id for k in keys}) == len(keys)
        assert len({k.secret for k in keys}) == len(keys)

    async def test_get_keys_returns_active_keys_and_none_for_unknown(self, store: KeyStore) -> None:
        """get_keys answers every id asked: the key if the tenant owns it, None if unknown."""
        tenant = _tenant()
        subject = await store.get_or_create_subject_key(tenant, _ref())
        period = await store.get_or_create_period_key(tenant, "2025-04")
        unknown = secrets.token_hex(16)
        found = await store.get_keys(tenant, [subject.key_id, period.key_id, unknown])
        assert set(found) == {subject.key_id, period.key_id, unknown}
        assert found[subject.key_id] == subject and found[period.key_id] == period
        assert found[subject.key_id].secret == subject.secret  # type: ignore[union-attr]
        assert found[unknown] is None

    async def test_erase_destroys_the_secret(self, store: KeyStore) -> None:
        """An erased subject key is reported once and never comes back with its secret."""
        tenant, ref = _tenant(), _ref()
        key = await store.get_or_create_subject_key(tenant, ref)
        assert await store.erase_subject(tenant, ref) == [key.key_id]
        found = (await store.get_keys(tenant, [key.key_id]))[key.key_id]
        assert found is None or (found.state == "erased" and found.secret == b"")
        assert await store.erase_subject(tenant, ref) == []

    async def test_no_resurrection_after_erase(self, store: KeyStore) -> None:
        """After erasure the subject gets a new key with a new id; the old one stays erased."""
        tenant, ref = _tenant(), _ref()
        old = await store.get_or_create_subject_key(tenant, ref)
        await store.erase_subject(tenant, ref)
        new = await store.get_or_create_subject_key(tenant, ref)
        assert new.key_id != old.key_id and new.secret != old.secret and new.state == "active"
        found = await store.get_keys(tenant, [old.key_id, new.key_id])
        assert found[old.key_id] is None or found[old.key_id].state == "erased"  # type: ignore[union-attr]
        assert found[new.key_id] == new

    async def test_erase_touches_nothing_else(self, store: KeyStore) -> None:
        """Erasing one subject leaves other subjects' keys and the period keys intact."""
        tenant, ref, other = _tenant(), _ref(), _ref()
        await store.get_or_create_subject_key(tenant, ref)
        kept = await store.get_or_create_subject_key(tenant, other)
        period = await store.get_or_create_period_key(tenant, "2025-05")
        await store.erase_subject(tenant, ref)
        found = await store.get_keys(tenant, [kept.key_id, period.key_id])
        assert found == {kept.key_id: kept, period.key_id: period}

    async def test_erase_unknown_subject_is_empty(self, store: KeyStore) -> None:
        """Erasing a subject that never had a key destroys nothing."""
        assert await store.erase_subject(_tenant(), _ref()) == []

    async def test_erase_races_with_creators(self, store: KeyStore) -> None:
        """Creators racing an erasure never get the erased key back afterwards."""
        tenant, ref = _tenant(), _ref()
        await store.get_or_create_subject_key(tenant, ref)
        results = await asyncio.gather(
            *(store.get_or_create_subject_key(tenant, ref) for _ in range(10)),
            store.erase_subject(tenant, ref),
            *(store.get_or_create_subject_key(tenant, ref) for _ in range(10)),
        )
        erased = results[10]
        assert isinstance(erased, list) and len(erased) <= 1
        final = await store.get_or_create_subject_key(tenant, ref)
        assert final.state == "active" and final.key_id not in erased

    async def test_expire_period(self, store: KeyStore) -> None:
        """An expired period's key loses its secret, and the period takes no new key."""
        tenant = _tenant()
        key = await store.get_or_create_period_key(tenant, "2024-12")
        other = await store.get_or_create_period_key(tenant, "2025-01")
        assert await store.expire_period(tenant, "2024-12") == [key.key_id]
        assert await store.expire_period(tenant, "2024-12") == []
        found = await store.get_keys(tenant, [key.key_id, other.key_id])
        assert found[key.key_id] is None or found[key.key_id].state == "erased"  # type: ignore[union-attr]
        assert found[other.key_id] == other
        with pytest.raises(PeriodExpiredError):
            await store.get_or_create_period_key(tenant, "2024-12")

    async def test_expire_unknown_period_is_empty(self, store: KeyStore) -> None:
        """Expiring a period that never had a key destroys nothing."""
        assert await store.expire_period(_tenant(), "2020-01") == []

    async def test_tenants_are_separate(self, store: KeyStore) -> None:
        """One tenant never sees, shares or destroys another tenant's keys."""
        a, b, ref = _tenant(), _tenant(), _ref()
        key_a = await store.get_or_create_subject_key(a, ref)
        key_b = await store.get_or_create_subject_key(b, ref)
        period_a = await store.get_or_create_period_key(a, "2025-06")
        assert key_a.key_id != key_b.key_id and key_a.secret != key_b.secret
        assert await store.get_keys(b, [key_a.key_id, period_a.key_id]) == {
            key_a.key_id: None, period_a.key_id: None,
        }
        assert await store.erase_subject(b, ref) == [key_b.key_id]
        assert await store.expire_period(b, "2025-06") == []
        assert await store.get_keys(a, [key_a.key_id, period_a.key_id]) == {
            key_a.key_id: key_a, period_a.key_id: period_a,
        }

    @pytest.mark.parametrize("period", ["2025-13", "2025-1", "25-01", "2025-01-01", ""])
    async def test_malformed_period_is_refused(self, store: KeyStore, period: str) -> None:
        """A period that is not 'YYYY-MM' is refused before anything is stored."""
        with pytest.raises(InvalidInputError):
            await store.get_or_create_period_key(_tenant(), period)

    @pytest.mark.parametrize("ref", [b"", b"x" * 31, b"x" * 33])
    async def test_malformed_subject_ref_is_refused(self, store: KeyStore, ref: bytes) -> None:
        """A subject_ref that is not 32 bytes is refused before anything is stored."""
        with pytest.raises(InvalidInputError):
            await store.get_or_create_subject_key(_tenant(), ref)
