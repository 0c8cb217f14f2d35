"""``sealtrail admin`` against real PostgreSQL: tenants, keys shown once, revoke, rotate, list, KEK."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from sealtrail.cli.admin import register
from sealtrail.infra.auth import parse_token


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_admin_commands_end_to_end(fresh_db_url: str, tmp_path: Path) -> None:
    """kek generate, tenant create, key create --json (token once, scopes), list (no tokens),
    rotate and revoke, each through the real command line and database."""
    runner, app = CliRunner(), _app()
    kek = tmp_path / "kek"
    env = {"SEALTRAIL_DATABASE_URL": fresh_db_url, "SEALTRAIL_KEK_FILE": str(kek)}

    def run(*args: str) -> str:
        result = runner.invoke(app, ["admin", *args], env=env)
        assert result.exit_code == 0, result.output
        return result.stdout

    run("kek", "generate", str(kek))
    assert kek.stat().st_mode & 0o777 == 0o600
    run("tenant", "create", "acme")
    created = json.loads(run("key", "create", "--tenant", "acme", "--role", "gateway", "--label", "gw-1",
                             "--expires-in", "30", "--json"))
    assert {"key_id", "token", "role", "scopes", "tenant"} <= set(created)
    assert (created["role"], created["tenant"], created["scopes"]) == ("gateway", "acme",
                                                                       ["events:write", "proofs:read"])
    assert parse_token(created["token"])[0] == created["key_id"] and created["expires_at"]
    rotated = json.loads(run("key", "rotate", created["key_id"], "--json"))
    run("key", "revoke", rotated["key_id"])
    listed = json.loads(run("key", "list", "--tenant", "acme", "--json"))
    assert [(k["key_id"], k["state"], k["label"]) for k in listed] == [
        (created["key_id"], "revoked", "gw-1"), (rotated["key_id"], "revoked", "gw-1")]
    assert created["token"].split("_", 2)[2] not in json.dumps(listed)


def test_admin_errors_are_one_line_and_exit_1(fresh_db_url: str, tmp_path: Path) -> None:
    """Unknown tenant, a taken tenant name, a bad role and a missing KEK fail cleanly."""
    runner, app = CliRunner(), _app()
    kek = tmp_path / "kek"
    env = {"SEALTRAIL_DATABASE_URL": fresh_db_url, "SEALTRAIL_KEK_FILE": str(kek)}
    missing = runner.invoke(app, ["admin", "tenant", "create", "acme"], env=env)
    assert missing.exit_code == 1 and "KEK" in missing.output
    runner.invoke(app, ["admin", "kek", "generate", str(kek)], env=env)
    assert runner.invoke(app, ["admin", "tenant", "create", "acme"], env=env).exit_code == 0
    assert runner.invoke(app, ["admin", "tenant", "create", "acme"], env=env).exit_code == 1
    assert runner.invoke(app, ["admin", "key", "create", "--tenant", "nope", "--role", "gateway"],
                         env=env).exit_code == 1
    assert runner.invoke(app, ["admin", "key", "create", "--tenant", "acme", "--role", "root"],
                         env=env).exit_code == 2
    assert runner.invoke(app, ["admin", "kek", "generate", str(kek)], env=env).exit_code == 1
