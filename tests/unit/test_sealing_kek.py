"""KEK wrapping of data keys: bound to KEK, key id, kind and tenant; rotation is a re-wrap."""

from __future__ import annotations

import dataclasses

import pytest

from sealtrail.core.sealing import DataKey, Kek, WrappedKey, rewrap
from sealtrail.errors import InvalidInputError, SealingError


@pytest.fixture
def kek() -> Kek:
    return Kek.generate()


def test_wrap_round_trip(kek: Kek) -> None:
    """A wrapped key unwraps to the same id, kind and secret; the secret is not in the wrapping."""
    key = DataKey.generate("subject")
    wrapped = kek.wrap(key, tenant="acme")
    assert key.secret not in wrapped.ciphertext and len(wrapped.nonce) == 24
    assert wrapped.kek_id == kek.kek_id
    opened = kek.unwrap(wrapped, tenant="acme")
    assert (opened.key_id, opened.kind, opened.secret) == (key.key_id, key.kind, key.secret)


def test_kek_id_is_stable_and_short() -> None:
    """The KEK id is 16 hex digits derived from the KEK, the same for the same bytes."""
    secret = bytes(range(32))
    assert Kek(secret).kek_id == Kek(secret).kek_id
    assert len(Kek(secret).kek_id) == 16 and Kek(secret).kek_id != Kek(bytes(32)).kek_id
    with pytest.raises(InvalidInputError):
        Kek(b"short")


@pytest.mark.parametrize(
    "change",
    [{"key_id": "b" * 32}, {"kind": "period"}, {"nonce": bytes(24)},
     {"ciphertext": b"\x00" * 48}],
)
def test_tampered_wrapping_fails(kek: Kek, change: dict[str, object]) -> None:
    """Changing the key id, kind, nonce or ciphertext of a wrapped key makes it fail to unwrap."""
    wrapped = kek.wrap(DataKey.generate("subject"), tenant="acme")
    with pytest.raises(SealingError):
        kek.unwrap(dataclasses.replace(wrapped, **change), tenant="acme")  # type: ignore[arg-type]


def test_wrapping_is_bound_to_tenant(kek: Kek) -> None:
    """A wrapped key moved to another tenant does not unwrap."""
    wrapped = kek.wrap(DataKey.generate("period"), tenant="acme")
    with pytest.raises(SealingError):
        kek.unwrap(wrapped, tenant="globex")


def test_other_kek_refused(kek: Kek) -> None:
    """A key wrapped by another KEK is refused by id, and by the tag if the id is forged."""
    wrapped = kek.wrap(DataKey.generate("subject"), tenant="acme")
    other = Kek.generate()
    with pytest.raises(SealingError, match="wrapped by KEK"):
        other.unwrap(wrapped, tenant="acme")
    forged = WrappedKey(other.kek_id, wrapped.key_id, wrapped.kind, wrapped.nonce, wrapped.ciphertext)
    with pytest.raises(SealingError, match="failed to unwrap"):
        other.unwrap(forged, tenant="acme")


def test_rewrap_moves_to_the_new_kek(kek: Kek) -> None:
    """Rotation re-wraps: the new KEK opens the key, the old one no longer does."""
    key = DataKey.generate("subject")
    new = Kek.generate()
    moved = rewrap(kek.wrap(key, tenant="acme"), old=kek, new=new, tenant="acme")
    assert moved.kek_id == new.kek_id
    assert new.unwrap(moved, tenant="acme").secret == key.secret
    with pytest.raises(SealingError):
        kek.unwrap(moved, tenant="acme")


def test_erased_key_cannot_be_wrapped(kek: Kek) -> None:
    """A tombstone has nothing to wrap."""
    with pytest.raises(SealingError):
        kek.wrap(DataKey.generate("subject").erased(), tenant="acme")


def test_kek_repr_hides_secret() -> None:
    """repr of a KEK shows its id only."""
    secret = bytes(range(32))
    text = repr(Kek(secret))
    assert secret.hex() not in text and repr(secret) not in text and Kek(secret).kek_id in text
