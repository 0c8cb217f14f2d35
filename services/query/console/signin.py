"""Failed console sign-ins, limited per client address and per key prefix (token buckets).

Each address and each key id (the ``st_<key id>_`` part of a key, which is not secret) has a
bucket of ``burst`` tokens refilled at ``per_minute`` a minute. A failed sign-in takes a token from
both; while either is empty, sign-ins from that address or with that key id are refused with 429
and ``Retry-After`` (the seconds until both hold a token again), before the key is even checked.
A successful sign-in takes nothing. Buckets are kept in this process (at most 10,000; those of the
oldest failures, the most refilled, are dropped first): several query processes each limit on
their own, so behind a load balancer a client gets ``burst`` failures per process.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sealtrail.infra.auth import KEY_ID_HEX_CHARS, TOKEN_PREFIX

KEY_ID = re.compile(rf"^{TOKEN_PREFIX}([0-9a-f]{{{KEY_ID_HEX_CHARS}}})_")
MAX_BUCKETS = 10_000


def key_prefix(key: str) -> str:
    """The bucket name of a presented key: its key id, or ``malformed`` (never any of the secret)."""
    found = KEY_ID.match(key)
    return f"key:{found.group(1)}" if found else "key:malformed"


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


@dataclass
class SignInLimiter:
    """Token buckets of failed sign-ins; ``clock`` is monotonic seconds."""

    burst: int = 10
    per_minute: float = 10.0
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def _level(self, name: str, now: float) -> float:
        b = self._buckets.get(name)
        if b is None:
            return float(self.burst)
        return min(float(self.burst), b.tokens + (now - b.at) * self.per_minute / 60)

    def retry_after(self, names: Iterable[str]) -> float:
        """0 when every bucket holds a token; else the seconds until they all do."""
        now = self.clock()
        missing = max((1 - self._level(n, now) for n in names), default=0.0)
        return 0.0 if missing <= 0 else missing * 60 / self.per_minute

    def failed(self, names: Iterable[str]) -> None:
        """Take a token from each bucket."""
        now = self.clock()
        for name in names:
            level = self._level(name, now)
            self._buckets.pop(name, None)  # re-inserted last: the dict stays in order of last failure
            self._buckets[name] = _Bucket(max(0.0, level - 1), now)
        while len(self._buckets) > MAX_BUCKETS:
            del self._buckets[next(iter(self._buckets))]


def retry_seconds(wait: float) -> int:
    return max(1, math.ceil(wait))
