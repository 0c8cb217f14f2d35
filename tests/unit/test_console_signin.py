"""Failed console sign-ins: token buckets per client address and key id."""

from __future__ import annotations

from services.query.console.signin import SignInLimiter, key_prefix, retry_seconds


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_of_failures_then_one_a_refill() -> None:
    """``burst`` failures pass; then sign-ins wait until a token is back (per_minute a minute)."""
    clock = Clock()
    limiter = SignInLimiter(burst=3, per_minute=6, clock=clock)  # a token every 10 s
    names = ("address:10.0.0.1", "key:0123456789abcdef")
    for _ in range(3):
        assert limiter.retry_after(names) == 0
        limiter.failed(names)
    assert limiter.retry_after(names) == 10.0
    clock.now += 4
    assert abs(limiter.retry_after(names) - 6.0) < 1e-9 and retry_seconds(limiter.retry_after(names)) == 6
    clock.now += 6
    assert limiter.retry_after(names) == 0
    limiter.failed(names)
    assert limiter.retry_after(names) == 10.0


def test_either_bucket_refuses_and_others_are_untouched() -> None:
    """An exhausted address refuses every key from it; an exhausted key id refuses it from any
    address; another address with another key is not affected."""
    limiter = SignInLimiter(burst=2, per_minute=60, clock=Clock())
    for n in range(2):
        limiter.failed((f"address:a{n}", "key:aaaaaaaaaaaaaaaa"))
    assert limiter.retry_after(("address:a9", "key:aaaaaaaaaaaaaaaa")) == 1.0
    assert limiter.retry_after(("address:a0", "key:bbbbbbbbbbbbbbbb")) == 0
    limiter.failed(("address:a0", "key:bbbbbbbbbbbbbbbb"))
    assert limiter.retry_after(("address:a0", "key:cccccccccccccccc")) == 1.0
    assert limiter.retry_after(("address:z", "key:dddddddddddddddd")) == 0


def test_the_key_bucket_names_the_key_id_and_never_the_secret() -> None:
    """A well-formed key is limited by its key id; anything else shares one bucket."""
    assert key_prefix("st_0123456789abcdef_c2VjcmV0c2VjcmV0") == "key:0123456789abcdef"
    assert key_prefix("c2VjcmV0c2VjcmV0") == "key:malformed"
    assert key_prefix("st_XYZ_secret") == "key:malformed"
