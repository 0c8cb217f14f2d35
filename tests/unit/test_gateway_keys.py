"""Agent keys: shown once, stored as a hash, refused when unknown, wrong, revoked or expired."""

from __future__ import annotations

import time
from pathlib import Path

from services.gateway import keys
from services.gateway.sqlite import SqliteGatewayStore


async def test_a_key_is_stored_hashed_and_verified(tmp_path: Path) -> None:
    """The token is ``sgk_<id>_<secret>``; the state file holds neither the token nor the secret; the
    right token names its agent and a wrong secret, a malformed or unknown token name none."""
    store = SqliteGatewayStore(tmp_path / "state.db")
    try:
        new, record = keys.mint("alice", time.time())
        await store.create_key(record)
        secret = new.token.split("_", 2)[2]
        assert new.token.startswith(f"sgk_{new.key_id}_") and len(secret) == 43
        assert record.secret_hash == keys.hash_secret(secret) and secret not in repr(record)
        raw = _state_bytes(tmp_path)
        assert secret.encode() not in raw and new.token.encode() not in raw
        verifier = keys.KeyVerifier(store, cache_s=0)
        assert await verifier.agent_of(new.token) == "alice"
        assert await verifier.agent_of(new.token[:-1] + ("A" if new.token[-1] != "A" else "B")) is None
        assert await verifier.agent_of("sgk_0000000000000000_" + "x" * 43) is None
        assert await verifier.agent_of("Bearer nonsense") is None
    finally:
        await store.close()


async def test_revoked_and_expired_keys_are_refused(tmp_path: Path) -> None:
    """Revocation takes effect once the cache entry is older than ``cache_s``; an expiry in the
    past refuses the key."""
    store = SqliteGatewayStore(tmp_path / "state.db")
    try:
        new, record = keys.mint("bob", time.time())
        await store.create_key(record)
        cached = keys.KeyVerifier(store, cache_s=60)
        fresh = keys.KeyVerifier(store, cache_s=0)
        assert await cached.agent_of(new.token) == "bob"
        await store.revoke_key(new.key_id, time.time())
        assert await fresh.agent_of(new.token) is None
        assert await cached.agent_of(new.token) == "bob"  # within its cache time
        old, record = keys.mint("bob", time.time() - 10, expires_at=time.time() - 1)
        await store.create_key(record)
        assert await fresh.agent_of(old.token) is None
    finally:
        await store.close()


def _state_bytes(directory: Path) -> bytes:
    """The database file and its WAL, as a dump of the state would hold them."""
    return b"".join(p.read_bytes() for p in directory.iterdir() if p.is_file())


def test_redact_keeps_the_key_id_only() -> None:
    new, _ = keys.mint("alice", 0.0)
    shown = keys.redact(f"refused {new.token} here")
    assert new.key_id in shown and new.token not in shown and new.token.split("_", 2)[2] not in shown
