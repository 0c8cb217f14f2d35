"""Agent keys: ``sgk_<key id>_<secret>`` bearer tokens bound to one agent, stored as a SHA-256 hash.

A token is shown once, when it is created. Verification looks the key id up in the state store
and compares hashes in constant time; verified keys are cached for ``cache_s`` seconds so a call
costs no store round trip (a revocation takes effect within that time).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from services.gateway.ports import AgentKey, GatewayStore

_TOKEN = re.compile(r"^sgk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True, slots=True)
class NewKey:
    key_id: str
    token: str
    agent: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def mint(agent: str, now: float, *, expires_at: float | None = None) -> tuple[NewKey, AgentKey]:
    """A fresh token (shown once) and the record the store keeps (its hash only)."""
    key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    token = f"sgk_{key_id}_{secret}"
    return NewKey(key_id, token, agent), AgentKey(key_id, agent, hash_secret(secret), now, expires_at)


def redact(text: str) -> str:
    """``text`` with any gateway token's secret replaced (for messages that might echo one)."""
    return re.sub(r"sgk_([0-9a-f]{16})_[A-Za-z0-9_-]+", r"sgk_\1_…", text)


class KeyVerifier:
    def __init__(self, store: GatewayStore, *, cache_s: float) -> None:
        self._store = store
        self._cache_s = cache_s
        self._cache: dict[str, tuple[float, AgentKey]] = {}

    async def agent_of(self, token: str) -> str | None:
        """The agent a bearer token is bound to, or None for an unknown, revoked or expired key."""
        m = _TOKEN.match(token)
        if m is None:
            return None
        key_id, secret = m.groups()
        now = time.time()
        cached = self._cache.get(key_id)
        if cached is not None and now - cached[0] < self._cache_s:
            key: AgentKey | None = cached[1]
        else:
            key = await self._store.get_key(key_id)
            if key is not None:
                self._cache[key_id] = (now, key)
        if key is None or not key.usable(now):
            return None
        return key.agent if hmac.compare_digest(key.secret_hash, hash_secret(secret)) else None
