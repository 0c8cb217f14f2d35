"""Upstream credentials, sealed under the KEK: bearer tokens and headers for Streamable HTTP
servers, environment secrets for stdio servers.

Envelope encryption, as for payloads: each stored version has its own random 32-byte data key,
wrapped by the KEK (:meth:`~sealtrail.core.sealing.Kek.wrap`, ``tenant`` =
``gateway-credential:SERVER``), and the secret is XChaCha20-Poly1305 under that data key with a
random 24-byte nonce and ``aad`` = RFC 8785 JSON of ``{"context": "sealtrail gateway credential v1",
"key_id", "kind", "name", "server"}``, so a sealed value cannot be moved to another server, slot or
key. Stored: ``wrapped_key`` = wrap nonce || wrapped data key, ``sealed`` = nonce || ciphertext.

A server has one credential slot (its kind and name); ``set`` replaces it at once, ``rotate``
stores the new value as pending, health-checks the upstream with it and switches only if the
check passes, keeping the old value current until then. Both are ``credential_rotation`` events
whose ``credential_id`` is the label ``SERVER/vN``, never the secret.
"""

from __future__ import annotations

import re
import secrets
import stat
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_decrypt, crypto_aead_xchacha20poly1305_ietf_encrypt
from nacl.exceptions import CryptoError

from sealtrail.core.canonical import canonical_json
from sealtrail.core.sealing import KEY_BYTES, NONCE_BYTES, DataKey, Kek, WrappedKey, new_key_id
from sealtrail.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    SealingError,
    SealtrailError,
    ServiceStartError,
)
from sealtrail.infra.kek import parse_kek_hex
from sealtrail.sdk import events
from services.gateway.config import GatewayConfig, ServerConfig
from services.gateway.errors import UpstreamError
from services.gateway.ports import CredentialKind, CredentialStore, SealedCredential

CONTEXT = "sealtrail gateway credential v1"
KINDS: tuple[CredentialKind, ...] = ("bearer", "header", "env")
MAX_SECRET_BYTES = 8192
_HEADER = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_FORBIDDEN_HEADERS = {"host", "content-length", "content-type", "accept", "mcp-session-id", "mcp-protocol-version",
                      "transfer-encoding", "connection"}
Record = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True, slots=True, repr=False)
class Credential:
    """A credential in clear, in memory only while the gateway uses it."""

    server: str
    version: int
    kind: CredentialKind
    name: str
    secret: str

    def __repr__(self) -> str:
        return f"Credential(server={self.server!r}, version={self.version}, kind={self.kind!r}, secret=<hidden>)"

    def headers(self) -> dict[str, str]:
        if self.kind == "bearer":
            return {"Authorization": f"Bearer {self.secret}"}
        return {self.name: self.secret} if self.kind == "header" else {}

    def env(self) -> dict[str, str]:
        return {self.name: self.secret} if self.kind == "env" else {}


@dataclass(frozen=True, slots=True)
class Check:
    """What a health check with a credential found: ``status`` is ``ok`` or the failure's kind."""

    status: str
    latency_ms: int
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


Checker = Callable[[ServerConfig, Credential], Awaitable[Check]]


def load_kek_file(path: Path | None) -> Kek:
    """The KEK in ``[state] kek_file`` (64 hex digits, mode 0600); ServiceStartError naming the file."""
    if path is None:
        raise ServiceStartError("no KEK: stored credentials need [state] kek_file in the gateway configuration "
                                "(see `sealtrail admin kek generate`)")
    try:
        mode, text = path.stat().st_mode, path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as e:
        raise ServiceStartError(f"cannot read the KEK file {path}: {getattr(e, 'strerror', None) or e}") from e
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ServiceStartError(f"the KEK file {path} must be readable by its owner only (chmod 600)")
    return parse_kek_hex(text)


def slot(server: ServerConfig, kind: CredentialKind, name: str | None) -> tuple[CredentialKind, str]:
    """Check that ``kind`` fits the server's transport and ``name`` is a valid header or variable."""
    where = f"server {server.name}"
    if kind == "env":
        if server.command is None:
            raise InvalidInputError(f"{where} is reached over HTTP: give --header NAME or --bearer, not --env")
        if name is None or not _ENV.match(name):
            raise InvalidInputError(f"--env: expected an environment variable name, got {name!r}")
        return kind, name
    if server.url is None:
        raise InvalidInputError(f"{where} is a stdio command: give --env NAME, not --{kind}")
    if kind == "bearer":
        return kind, "Authorization"
    if name is None or not _HEADER.match(name) or name.lower() in _FORBIDDEN_HEADERS:
        raise InvalidInputError(f"--header: expected an HTTP header name the gateway does not set itself, "
                                f"got {name!r}")
    return kind, name


def check_secret(secret: str) -> str:
    """Strip one trailing newline (as ``echo`` and files add); refuse empty, huge or control characters."""
    value = secret[:-1] if secret.endswith("\n") else secret
    value = value[:-1] if value.endswith("\r") else value
    if not value:
        raise InvalidInputError("the secret is empty (it is read from stdin or --from-file)")
    if len(value.encode()) > MAX_SECRET_BYTES:
        raise InvalidInputError(f"the secret is longer than {MAX_SECRET_BYTES} bytes")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise InvalidInputError("the secret contains control characters (a newline inside it, for example)")
    return value


def _tenant(server: str) -> str:
    return f"gateway-credential:{server}"


def _aad(server: str, kind: str, name: str, key_id: str) -> bytes:
    return canonical_json({"context": CONTEXT, "key_id": key_id, "kind": kind, "name": name, "server": server})


def seal(kek: Kek, *, server: str, kind: CredentialKind, name: str, secret: str,
         state: Literal["pending", "current"], now: float) -> SealedCredential:
    """A new version to store (the store numbers it)."""
    data_key = DataKey(new_key_id(), "period", secrets.token_bytes(KEY_BYTES))
    wrapped = kek.wrap(data_key, tenant=_tenant(server))
    nonce = secrets.token_bytes(NONCE_BYTES)
    ciphertext = crypto_aead_xchacha20poly1305_ietf_encrypt(
        secret.encode(), _aad(server, kind, name, data_key.key_id), nonce, data_key.secret)
    return SealedCredential(server, 0, kind, name, state, kek.kek_id, data_key.key_id,
                            wrapped.nonce + wrapped.ciphertext, nonce + ciphertext, now)


def unseal(kek: Kek, row: SealedCredential) -> Credential:
    """The credential in clear; SealingError when the KEK is another or a byte was altered."""
    where = f"credential {row.server}/v{row.version}"
    if len(row.wrapped_key) <= NONCE_BYTES or len(row.sealed) <= NONCE_BYTES:
        raise SealingError(f"{where} holds no sealed value (it is {row.state})")
    wrapped = WrappedKey(row.kek_id, row.key_id, "period", row.wrapped_key[:NONCE_BYTES],
                         row.wrapped_key[NONCE_BYTES:])
    data_key = kek.unwrap(wrapped, tenant=_tenant(row.server))
    try:
        secret = crypto_aead_xchacha20poly1305_ietf_decrypt(
            row.sealed[NONCE_BYTES:], _aad(row.server, row.kind, row.name, row.key_id), row.sealed[:NONCE_BYTES],
            data_key.secret)
    except CryptoError as e:
        raise SealingError(f"{where} failed to open (wrong KEK or altered)") from e
    return Credential(row.server, row.version, row.kind, row.name, secret.decode())


async def current(store: CredentialStore, kek: Kek | None, server: str) -> Credential | None:
    """The server's current credential in clear, or None when it has none."""
    row = await store.current_credential(server)
    if row is None:
        return None
    if kek is None:
        raise ServiceStartError(f"server {server} has a stored credential but [state] kek_file is not set")
    return unseal(kek, row)


def source(store: CredentialStore, kek: Kek | None) -> Callable[[str], Awaitable[Credential | None]]:
    """What an upstream asks at each connect: its server's current credential in clear. A credential
    that cannot be read or opened fails the connection (UpstreamError naming why), never the process."""
    async def current_of(server: str) -> Credential | None:
        try:
            return await current(store, kek, server)
        except SealtrailError as e:
            raise UpstreamError(f"server {server}: its stored credential cannot be used: {e}") from e
    return current_of


def public(row: SealedCredential) -> dict[str, Any]:
    """A version as the CLI and the API show it: names, versions, states, last check; never a value."""
    return {"server": row.server, "version": row.version, "credential_id": label(row), "kind": row.kind,
            "name": row.name, "state": row.state, "created_at": row.created_at, "activated_at": row.activated_at,
            "retired_at": row.retired_at, "checked_at": row.checked_at, "check_status": row.check_status}


def label(row: SealedCredential) -> str:
    return f"{row.server}/v{row.version}"


def server_of(cfg: GatewayConfig, server: str) -> ServerConfig:
    if server not in cfg.servers:
        raise NotFoundError(f"no server {server!r} in {cfg.path} (servers: {sorted(cfg.servers)})")
    return cfg.servers[server]


async def set_credential(store: CredentialStore, kek: Kek, record: Record, server: ServerConfig, *,
                         kind: CredentialKind, name: str | None, secret: str, by: str) -> SealedCredential:
    """Store a new current value at once (the first credential, or a replacement without a check)."""
    kind, name = slot(server, kind, name)
    now = time.time()
    before = await store.current_credential(server.name)
    row = await store.add_credential(seal(kek, server=server.name, kind=kind, name=name, secret=check_secret(secret),
                                          state="pending", now=now))
    await store.activate_credential(server.name, row.version, now)
    await record(events.credential_rotation(
        server_id=server.name, credential_id=label(row), reason="manual",
        payload={"operation": "set", "by": by, "kind": kind, "name": name, "version": row.version,
                 "replaced_version": None if before is None else before.version}))
    return row


async def rotate_credential(store: CredentialStore, kek: Kek, record: Record, server: ServerConfig, checker: Checker,
                            *, secret: str, by: str, reason: str = "manual") -> tuple[SealedCredential, Check]:
    """Store the new value as pending, check the upstream with it, switch only when the check passes.

    The old value stays current until then; a failed candidate is erased and ConflictError says
    what the check found."""
    before = await store.current_credential(server.name)
    if before is None:
        raise NotFoundError(f"server {server.name} has no credential to rotate: use `credential set` first")
    now = time.time()
    row = await store.add_credential(seal(kek, server=server.name, kind=before.kind, name=before.name,
                                          secret=check_secret(secret), state="pending", now=now))
    check = await checker(server, unseal(kek, row))
    await store.note_credential_check(server.name, row.version, time.time(), check.status)
    if not check.ok:
        await store.fail_credential(server.name, row.version, time.time())
        raise ConflictError(f"credential {label(row)} was not switched to: the health check with it found "
                            f"{check.status.replace('_', ' ')} ({check.message}); {label(before)} stays current")
    await store.activate_credential(server.name, row.version, time.time())
    await record(events.credential_rotation(
        server_id=server.name, credential_id=label(row), reason=reason,  # type: ignore[arg-type]
        payload={"operation": "rotate", "by": by, "kind": row.kind, "name": row.name, "version": row.version,
                 "replaced_version": before.version, "check": check.status, "check_latency_ms": check.latency_ms}))
    return row, check


REASONS = ("scheduled", "suspected_compromise", "manual")
