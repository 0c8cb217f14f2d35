"""API-key tokens, roles and scopes, principals: the pure parts of authentication."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta

import pytest

from sealtrail.errors import AuthenticationError, InvalidInputError, PermissionDeniedError
from sealtrail.infra.auth import (
    ROLE_SCOPES,
    ApiKey,
    IssuedKey,
    Principal,
    Role,
    Scope,
    check_label,
    format_token,
    new_key_id,
    new_secret,
    parse_token,
)

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def _key(**kw: object) -> ApiKey:
    fields: dict[str, object] = {"key_id": "0123456789abcdef", "tenant_id": "acme", "role": Role.GATEWAY,
                                 "secret_hash": b"h" * 32, "label": "", "created_at": NOW}
    fields.update(kw)
    return ApiKey(**fields)  # type: ignore[arg-type]


def test_token_format_and_stored_hash() -> None:
    """A token is st_<16 hex>_<43 base64url chars>; only SHA-256 of the secret bytes is kept."""
    key_id, (secret, digest) = new_key_id(), new_secret()
    token = format_token(key_id, secret)
    assert re.fullmatch(r"st_[0-9a-f]{16}_[A-Za-z0-9_-]{43}", token)
    import base64

    assert digest == hashlib.sha256(base64.urlsafe_b64decode(secret + "=")).digest()
    assert parse_token(token) == (key_id, digest)


@pytest.mark.parametrize("token", [
    "", "st_", "xx_0123456789abcdef_" + "A" * 43, "st_0123456789ABCDEF_" + "A" * 43,
    "st_0123456789abcdef_" + "A" * 42, "st_0123456789abcdef_" + "A" * 42 + "!", "st_0123456789abcdef",
])
def test_malformed_tokens_are_refused_without_echo(token: str) -> None:
    """Malformed tokens raise AuthenticationError whose message repeats nothing of the token."""
    with pytest.raises(AuthenticationError) as e:
        parse_token(token)
    assert str(e.value) == "malformed API key"


def test_role_scopes_follow_the_design() -> None:
    """Scopes per role as in DESIGN section 7; the operator has no data scope."""
    assert {
        Role.GATEWAY: {Scope.EVENTS_WRITE, Scope.PROOFS_READ},
        Role.INVESTIGATOR: {Scope.CALLS_READ, Scope.CALLS_REVEAL, Scope.ANALYTICS_READ, Scope.PROOFS_READ},
        Role.DPO: {Scope.SUBJECTS_EXPORT, Scope.SUBJECTS_ERASE, Scope.CALLS_READ},
        Role.AUDITOR: {Scope.PROOFS_READ},
        Role.OPERATOR: {Scope.ADMIN},
    } == ROLE_SCOPES


def test_principal_scopes_and_gateway_id() -> None:
    """A principal has its role's scopes; gateway_id is the label, or the key id without one."""
    gateway = Principal.of(_key(label="gw-eu-1"))
    assert gateway.gateway_id == "gw-eu-1"
    assert Principal.of(_key()).gateway_id == "0123456789abcdef"
    gateway.require(Scope.EVENTS_WRITE)
    with pytest.raises(PermissionDeniedError):
        gateway.require(Scope.CALLS_REVEAL)


def test_key_states() -> None:
    """A key is active until it expires or is revoked, whichever comes first."""
    assert _key().state_at(NOW) == "active"
    assert _key(expires_at=NOW + timedelta(days=1)).usable_at(NOW)
    assert _key(expires_at=NOW).state_at(NOW) == "expired"
    assert _key(revoked_at=NOW - timedelta(seconds=1)).state_at(NOW) == "revoked"


def test_issued_key_repr_hides_the_token() -> None:
    """The only object holding a token never shows it in a repr."""
    issued = IssuedKey(key=_key(), token="st_0123456789abcdef_" + "S" * 43)
    assert "SSSS" not in repr(issued) and "SSSS" not in str(issued)


@pytest.mark.parametrize("label", ["Alice Smith", "a" * 64, "-gw", "gw/1", "bob@example.com"])
def test_labels_are_identifiers(label: str) -> None:
    """Labels become gateway ids in clear headers, so free text (names, e-mails) is refused."""
    with pytest.raises(InvalidInputError):
        check_label(label)
    assert check_label("gw-eu-1.prod") == "gw-eu-1.prod"
