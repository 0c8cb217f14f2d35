"""The contract of :class:`services.gateway.ports.GatewayStore`, run against each adapter."""

from __future__ import annotations

import asyncio
import time

import pytest

from services.gateway.config import RateLimit
from services.gateway.ports import AgentKey, Approval, ApprovalStateError, GatewayStore


def _approval(fp: str = "fp-1", *, created: float | None = None, ttl: float = 60) -> Approval:
    now = created if created is not None else time.time()
    return Approval(f"apr_{fp}_{now}", fp, "alice", "demo", "delete_record", "01a25166-5f25-7a65-a124-fee07687ab8a",
                    now, now + ttl)


class GatewayStoreContract:
    """Subclasses provide a fresh ``store`` fixture."""

    async def test_keys_are_stored_hashed_and_revoked_once(self, store: GatewayStore) -> None:
        """A key comes back as stored; a duplicate id is refused; revoke and expire take effect once."""
        key = AgentKey("0123456789abcdef", "alice", "h" * 64, 100.0)
        await store.create_key(key)
        assert await store.get_key(key.key_id) == key
        with pytest.raises(ValueError):
            await store.create_key(key)
        assert [k.key_id for k in await store.list_keys("alice")] == [key.key_id]
        assert await store.list_keys("bob") == []
        assert await store.expire_key(key.key_id, 500.0)
        assert (await store.get_key(key.key_id)).expires_at == 500.0  # type: ignore[union-attr]
        assert await store.revoke_key(key.key_id, 200.0)
        assert not await store.revoke_key(key.key_id, 300.0)
        got = await store.get_key(key.key_id)
        assert got is not None and got.revoked_at == 200.0 and not got.usable(250.0)
        assert await store.get_key("ffffffffffffffff") is None

    async def test_an_approval_is_decided_once(self, store: GatewayStore) -> None:
        """Two racing approvers: exactly one wins, the other is told it is already decided."""
        a = _approval("race")
        await store.create_approval(a)
        assert await store.find_approval("race") == a
        results = await asyncio.gather(
            store.decide_approval(a.approval_id, granted=True, by="carol", reason=None, at=time.time()),
            store.decide_approval(a.approval_id, granted=False, by="dave", reason="no", at=time.time()),
            return_exceptions=True)
        assert sum(isinstance(r, ApprovalStateError) for r in results) == 1
        winner = next(r for r in results if isinstance(r, Approval))
        assert (await store.get_approval(a.approval_id)) == winner
        with pytest.raises(KeyError):
            await store.decide_approval("apr_missing", granted=True, by="x", reason=None, at=time.time())

    async def test_an_expired_approval_cannot_be_decided(self, store: GatewayStore) -> None:
        a = _approval("old", created=time.time() - 100, ttl=10)
        await store.create_approval(a)
        assert (await store.find_approval("old")).expired(time.time())  # type: ignore[union-attr]
        with pytest.raises(ApprovalStateError, match="expired"):
            await store.decide_approval(a.approval_id, granted=True, by="carol", reason=None, at=time.time())

    async def test_a_grant_releases_one_call(self, store: GatewayStore) -> None:
        """consume_approval succeeds for exactly one of several concurrent callers; then the call's
        fingerprint has no open approval any more."""
        a = _approval("once")
        await store.create_approval(a)
        await store.decide_approval(a.approval_id, granted=True, by="carol", reason=None, at=time.time())
        wins = await asyncio.gather(*(store.consume_approval(a.approval_id) for _ in range(5)))
        assert wins.count(True) == 1
        assert await store.find_approval("once") is None
        assert [x.status for x in await store.list_approvals("consumed")] == ["consumed"]

    async def test_buckets_refill_and_never_overspend(self, store: GatewayStore) -> None:
        """A 5/s bucket gives 5 tokens at once, then none, then refills with time; concurrent draws
        never spend more tokens than there are."""
        rate = RateLimit(5, 1.0, "5/s")
        now = 1000.0
        got = [await store.take("b1", rate, now) for _ in range(6)]
        assert [ok for ok, _ in got] == [True] * 5 + [False]
        assert 0 < got[-1][1] <= 0.2 + 1e-9
        assert (await store.take("b1", rate, now + 0.2))[0]
        many = await asyncio.gather(*(store.take("b2", RateLimit(10, 3600.0, "10/h"), now) for _ in range(25)))
        assert sum(ok for ok, _ in many) == 10
