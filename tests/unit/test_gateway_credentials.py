"""Sealing of upstream credentials under the KEK, and the checks on what is stored."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from sealtrail.core.sealing import Kek
from sealtrail.errors import InvalidInputError, SealingError, ServiceStartError
from services.gateway import credentials
from services.gateway.config import ServerConfig

HTTP = ServerConfig(name="docs", url="http://127.0.0.1:9/mcp")
STDIO = ServerConfig(name="fs", command=("server",))
SECRET = "tok-5f1e0c-very-secret"


def test_a_sealed_credential_opens_only_with_its_kek_server_and_slot() -> None:
    """The secret is in no stored byte string; it opens with the KEK; a moved or altered row does not."""
    kek = Kek.generate()
    row = replace(credentials.seal(kek, server="docs", kind="bearer", name="Authorization", secret=SECRET,
                                   state="current", now=1.0), version=1)
    assert SECRET.encode() not in row.sealed + row.wrapped_key
    assert SECRET not in repr(row)
    opened = credentials.unseal(kek, row)
    assert (opened.secret, opened.version, opened.headers()) == (SECRET, 1, {"Authorization": f"Bearer {SECRET}"})
    assert SECRET not in repr(opened)
    with pytest.raises(SealingError):
        credentials.unseal(Kek.generate(), row)
    with pytest.raises(SealingError):
        credentials.unseal(kek, replace(row, server="other"))
    with pytest.raises(SealingError):
        credentials.unseal(kek, replace(row, kind="header", name="Authorization"))
    flipped = row.sealed[:-1] + bytes([row.sealed[-1] ^ 1])
    with pytest.raises(SealingError):
        credentials.unseal(kek, replace(row, sealed=flipped))
    with pytest.raises(SealingError, match="no sealed value"):
        credentials.unseal(kek, replace(row, sealed=b"", state="retired"))


def test_slots_fit_the_transport() -> None:
    """Headers and bearer tokens go to HTTP servers, environment variables to stdio commands."""
    assert credentials.slot(HTTP, "bearer", None) == ("bearer", "Authorization")
    assert credentials.slot(HTTP, "header", "X-Api-Key") == ("header", "X-Api-Key")
    assert credentials.slot(STDIO, "env", "API_TOKEN") == ("env", "API_TOKEN")
    for server, kind, name, says in [(HTTP, "env", "X", "--header NAME or --bearer"),
                                     (STDIO, "bearer", None, "--env NAME"),
                                     (HTTP, "header", "Mcp-Session-Id", "does not set itself"),
                                     (HTTP, "header", "bad name", "header name"),
                                     (STDIO, "env", "1X", "environment variable")]:
        with pytest.raises(InvalidInputError, match=says):
            credentials.slot(server, kind, name)  # type: ignore[arg-type]
    env = credentials.Credential("fs", 1, "env", "API_TOKEN", SECRET)
    assert (env.env(), env.headers()) == ({"API_TOKEN": SECRET}, {})


def test_secrets_are_checked_and_one_trailing_newline_dropped() -> None:
    assert credentials.check_secret(SECRET + "\n") == SECRET
    assert credentials.check_secret(SECRET + "\r\n") == SECRET
    for bad, says in [("", "empty"), ("\n", "empty"), ("a\nb", "control"), ("x" * 9000, "longer")]:
        with pytest.raises(InvalidInputError, match=says):
            credentials.check_secret(bad)


def test_the_kek_file_must_be_private(tmp_path: Path) -> None:
    """A KEK file open to others is refused; a missing setting says which key to set."""
    f = tmp_path / "kek"
    f.write_text("ab" * 32 + "\n")
    f.chmod(0o600)
    assert credentials.load_kek_file(f).kek_id == Kek(bytes.fromhex("ab" * 32)).kek_id
    f.chmod(0o644)
    with pytest.raises(ServiceStartError, match="chmod 600"):
        credentials.load_kek_file(f)
    with pytest.raises(ServiceStartError, match=r"\[state\] kek_file"):
        credentials.load_kek_file(None)
    with pytest.raises(ServiceStartError, match="cannot read"):
        credentials.load_kek_file(tmp_path / "missing")


def test_config_reads_the_kek_file_and_health_settings(tmp_path: Path) -> None:
    """[state] kek_file is a path relative to the file; health settings default to 60 s and 3, and
    bad values are refused naming the key."""
    from services.gateway import config

    base = """policy_id = "p"\n[ledger]\nurl = "http://127.0.0.1:8700"\ntoken_file = "t"\n[state]\n""" \
           """database = "s.db"\n{state}\n[servers.docs]\nurl = "http://127.0.0.1:9/mcp"\n{server}\n"""
    path = tmp_path / "g.toml"
    path.write_text(base.format(state='kek_file = "keys/gw.kek"', server=""))
    cfg = config.load(path)
    assert cfg.kek_file == tmp_path / "keys" / "gw.kek"
    assert (cfg.servers["docs"].health_interval_s, cfg.servers["docs"].unhealthy_after) == (60.0, 3)
    path.write_text(base.format(state="", server="health_interval_seconds = 0\nunhealthy_after = 1"))
    cfg = config.load(path)
    assert cfg.kek_file is None and cfg.servers["docs"].health_interval_s == 0
    for server, key in [("unhealthy_after = 0", "servers.docs.unhealthy_after"),
                        ("health_interval_seconds = -1", "servers.docs.health_interval_seconds"),
                        ("health_interval = 5", "servers.docs.health_interval")]:
        path.write_text(base.format(state="", server=server))
        with pytest.raises(config.GatewayConfigError, match=re.escape(key)):
            config.load(path)


async def test_a_credential_under_another_kek_fails_the_connection_not_the_process(tmp_path: Path) -> None:
    """The source an upstream asks at each connect turns an unopenable value into UpstreamError."""
    from sealtrail.errors import SealtrailError
    from services.gateway.errors import UpstreamError
    from services.gateway.sqlite import SqliteGatewayStore

    store = SqliteGatewayStore(tmp_path / "state.db")
    try:
        async def record(_: dict[str, object]) -> None:
            return None

        await credentials.set_credential(store, Kek.generate(), record, HTTP, kind="bearer", name=None, secret=SECRET,
                                         by="t")
        source = credentials.source(store, Kek.generate())
        with pytest.raises(UpstreamError, match=r"cannot be used: key .* is wrapped by KEK") as caught:
            await source("docs")
        assert SECRET not in str(caught.value) and isinstance(caught.value, SealtrailError)
        assert await credentials.source(store, Kek.generate())("other") is None
        with pytest.raises(UpstreamError, match="kek_file is not set"):
            await credentials.source(store, None)("docs")
    finally:
        await store.close()
