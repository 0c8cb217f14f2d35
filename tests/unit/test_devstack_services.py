"""``deploy/local/up --all``'s pieces that need no server: secrets made once with owner-only modes,
and each service's environment holding only its own secrets."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from sealtrail.devstack import services
from sealtrail.devstack.secrets import ensure_secrets, read_tokens, write_private
from sealtrail.infra.servicekey import load_service_signer


def test_secrets_are_made_once_owner_only_and_never_replaced(tmp_path: Path) -> None:
    """The KEK and both receipt keys are 0600 in a 0700 directory; a second run keeps them."""
    first = ensure_secrets(tmp_path)
    assert stat.S_IMODE(first.dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(first.ledger_keys.stat().st_mode) == 0o700
    files = (first.kek, first.ingest_key, first.query_key)
    before = [f.read_bytes() for f in files]
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    ingest = load_service_signer(first.ingest_key).verifier()
    query = load_service_signer(first.query_key).verifier()
    assert ingest.name != query.name and ingest.vkey() != query.vkey()
    again = ensure_secrets(tmp_path)
    assert [f.read_bytes() for f in (again.kek, again.ingest_key, again.query_key)] == before


def test_each_service_gets_only_its_own_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ledger gets the signing-key directory and no KEK; ingest and query the KEK and each its
    own receipt key; the projector none. Secrets set in the shell that runs `up` reach none."""
    for name in ("SEALTRAIL_KEK", "SEALTRAIL_KEK_FILE", "SEALTRAIL_SERVICE_KEY_FILE", "SEALTRAIL_SIGNING_KEY_DIR"):
        monkeypatch.setenv(name, "/from/the/shell")
    s = ensure_secrets(tmp_path)
    env = {name: services.environment(name, db_url="postgresql://x@127.0.0.1:1/db", bootstrap="127.0.0.1:2",
                                      secrets=s) for name in services.SERVICES}
    private = ("SEALTRAIL_KEK", "SEALTRAIL_KEK_FILE", "SEALTRAIL_SERVICE_KEY_FILE", "SEALTRAIL_SIGNING_KEY_DIR")
    own = {name: {k: e[k] for k in private if k in e} for name, e in env.items()}
    assert own == {
        "ledger": {"SEALTRAIL_SIGNING_KEY_DIR": str(s.ledger_keys)},
        "ingest": {"SEALTRAIL_KEK_FILE": str(s.kek), "SEALTRAIL_SERVICE_KEY_FILE": str(s.ingest_key)},
        "query": {"SEALTRAIL_KEK_FILE": str(s.kek), "SEALTRAIL_SERVICE_KEY_FILE": str(s.query_key)},
        "projector": {},
    }
    assert all(e["SEALTRAIL_DATABASE_URL"] == "postgresql://x@127.0.0.1:1/db" for e in env.values())


def test_kept_tokens_are_read_for_their_tenant_only(tmp_path: Path) -> None:
    """tokens.json is written 0600 and read back only for the tenant it was written for."""
    s = ensure_secrets(tmp_path)
    assert read_tokens(s, "local") == {}
    write_private(s.tokens, '{"tenant": "local", "keys": {"gateway": {"key_id": "k", "token": "t"}}}')
    assert stat.S_IMODE(s.tokens.stat().st_mode) == 0o600
    assert read_tokens(s, "local") == {"gateway": {"key_id": "k", "token": "t"}}
    assert read_tokens(s, "other") == {}


def test_a_recorded_pid_of_another_program_is_not_taken_for_the_service(tmp_path: Path) -> None:
    """A pid reused by another program after a reboot is not a running service (down never kills it)."""
    import os

    svc = services.ServiceProcess("ingest", 1, os.getpid())  # this pytest process: alive, not `sealtrail ingest`
    assert not svc.running()
    services.stop(svc)
    assert svc.pid == 0
    assert services.load({"services": {"ingest": {"port": 4242, "pid": 7}}})[1] == services.ServiceProcess(
        "ingest", 4242, 7)
