"""A gateway in front of the token-protected test upstream (:mod:`tests.support.authserver`) with
stored credentials, health checks and an operator key; and the CLI with a secret on stdin."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sealtrail.infra.kek import write_kek_file
from tests.support.authserver import AuthServer
from tests.support.gateway import Setup, ledger_events, write_setup
from tests.support.serve import Served, cli, create_key, free_port, wait_for_checkpoint

DOCS = """
[servers.docs]
url = "{url}"
tier_default = "read"
health_interval_seconds = {interval}
unhealthy_after = {after}

[servers.docs.tools.search]
[servers.docs.tools.word_count]
"""


def docs_setup(tmp: Path, served: Served, upstream: AuthServer, *, interval: float = 1, after: int = 2,
               database: str = "state.db") -> Setup:
    """The base gateway configuration plus server ``docs`` (the auth upstream), a KEK, and alice
    allowed ``docs/*``."""
    setup = write_setup(tmp, served, alice_extra=', "docs/*"', database=database,
                        extra=DOCS.format(url=upstream.url, interval=interval, after=after))
    text = setup.config.read_text()
    setup.config.write_text(text.replace(f'database = "{database}"',
                                         f'database = "{database}"\nkek_file = "gateway.kek"', 1))
    write_kek_file(tmp / "gateway.kek")
    return setup


def auth_upstream(tmp: Path, token: str) -> AuthServer:
    server = AuthServer(tmp / "upstream", free_port())
    server.dir.mkdir(parents=True, exist_ok=True)
    server.set_token(token)
    return server.start()


def cli_in(*args: str, secret: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``sealtrail ARGS`` with ``secret`` on stdin (never on the command line)."""
    return subprocess.run([sys.executable, "-m", "sealtrail.cli.main", *args], input=secret + "\n",
                          capture_output=True, text=True, timeout=timeout, env=dict(os.environ), check=False)


def operator_key(setup: Setup, name: str = "olga") -> str:
    import json

    done = cli("gateway", "key", "create", "--config", str(setup.config), "--operator", name, "--json")
    assert done.returncode == 0, done.stderr
    token: str = json.loads(done.stdout)["token"]
    return token


def verify_ledger(served: Served) -> None:
    """`sealtrail verify` passes on everything the ledger holds now."""
    size = len(ledger_events(served))
    auditor = create_key(served, "auditor")
    wait_for_checkpoint(served.url, auditor, "default", size)
    done = cli("verify", "--url", served.url, "--log", "default", "--token", auditor)
    assert done.returncode == 0, done.stderr + done.stdout
