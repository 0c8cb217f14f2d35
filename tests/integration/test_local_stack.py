"""``deploy/local/up --all``: the README's commands run as written, and a second ``up`` reuses everything.

Each test keeps its stack in its own state directory (``SEALTRAIL_LOCAL_DIR``), so it collides
with no other run, and stops it with ``deploy/local/down`` whatever happens.
"""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sealtrail.devstack._proc import pid_alive
from tests.support.servers import remove_datadir, server_datadir

ROOT = Path(__file__).resolve().parents[2]
HEADING = "### The four services on this machine"
ROLES = ("GATEWAY", "INVESTIGATOR", "DPO", "AUDITOR")


def readme_block() -> str:
    """The first ``sh`` block under :data:`HEADING` in README.md."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert HEADING in text, f"README.md has no section {HEADING!r}"
    block = re.search(r"```sh\n(.*?)```", text[text.index(HEADING):], re.DOTALL)
    assert block is not None, f"no sh block under {HEADING!r}"
    return block.group(1)


@pytest.fixture
def state_dir() -> Iterator[Path]:
    d = server_datadir("localstack")
    try:
        yield d
    finally:
        _bash("deploy/local/down", d, check=False)
        remove_datadir(d)


def _bash(script: str, d: Path, *, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALTRAIL_")}
    env["SEALTRAIL_LOCAL_DIR"] = str(d)
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)
    if check:
        assert done.returncode == 0, f"exit {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    return done


def _exports(stdout: str) -> dict[str, str]:
    env = {}
    for line in stdout.splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            env[name] = value.strip("'")
    return env


def _processes_of(d: Path) -> list[str]:
    """Every live process whose command line, working directory or environment names ``d``."""
    found = []
    needle = str(d).encode()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if not pid_alive(int(proc.name)):
                continue
            cmdline = (proc / "cmdline").read_bytes()
            where = os.readlink(proc / "cwd").encode()
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if needle in cmdline or where.startswith(needle) or needle in environ:
            command = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{proc.name}: {command[:200]}")
    return found


def _assert_private(d: Path) -> None:
    secrets = d / "secrets"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    files = [secrets / n for n in ("kek", "ingest.key", "query.key", "tokens.json")]
    files += sorted((secrets / "ledger-keys").glob("*.key"))
    assert len(files) == 6, f"the ledger wrote no key pair into {secrets / 'ledger-keys'}"
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


def test_the_readme_commands_run_as_written(state_dir: Path) -> None:
    """The README's block (up --all, status, a curl POST with the gateway token, waiting for the
    proof, `sealtrail verify` with the auditor token, down) exits 0; verify says OK; the secrets are
    0600 in the state directory; and after `down` no process of the stack is left."""
    done = _bash(readme_block(), state_dir)

    assert re.search(r"^OK: sealtrail\.local/log/local: 1 entries, \d+ checkpoints verified; 1 payloads present",
                     done.stdout, re.MULTILINE), done.stdout
    status = {line.split()[0]: line for line in done.stdout.splitlines() if " pid=" in line}
    assert set(status) == {"postgres", "kafka", "ledger", "ingest", "query", "projector"}, done.stdout
    for name in ("ledger", "ingest", "query", "projector"):
        assert status[name].split()[1] == "up" and status[name].endswith("ready"), status[name]
    pids = [int(m) for m in re.findall(r" pid=(\d+)", done.stdout)]
    assert len(pids) == 6
    _assert_private(state_dir)
    assert not [p for p in pids if pid_alive(p)], "a process of the stack outlived deploy/local/down"
    assert not _processes_of(state_dir)


def test_up_all_again_reuses_the_processes_secrets_tenant_and_tokens(state_dir: Path) -> None:
    """A second `up --all` starts nothing and prints the same exports; after `down`, `up --all`
    starts the services again with the same secrets and tokens, on the same ports except one that
    another program took meanwhile; `down` leaves no process behind."""
    first = _bash("deploy/local/up --all", state_dir)
    env = _exports(first.stdout)
    assert {f"SEALTRAIL_{r}_TOKEN" for r in ROLES} <= set(env), first.stdout
    assert env["SEALTRAIL_TENANT"] == "local"
    assert env["SEALTRAIL_INGEST_URL"].startswith("http://127.0.0.1:")
    assert env["SEALTRAIL_QUERY_URL"].startswith("http://127.0.0.1:")
    assert len({env[f"SEALTRAIL_{r}_TOKEN"] for r in ROLES}) == 4
    kek = (state_dir / "secrets" / "kek").read_bytes()
    pids = json.loads((state_dir / "stack.json").read_text())["services"]

    again = _bash("deploy/local/up --all", state_dir)
    assert _exports(again.stdout) == env
    assert again.stderr.count("already running") == 4, again.stderr
    assert json.loads((state_dir / "stack.json").read_text())["services"] == pids

    _bash("deploy/local/down", state_dir)
    assert not _processes_of(state_dir)
    ingest_port = int(env["SEALTRAIL_INGEST_URL"].rsplit(":", 1)[1])
    with socket.socket() as squatter:  # another program took ingest's port meanwhile
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past the old server's TIME_WAIT
        squatter.bind(("127.0.0.1", ingest_port))
        squatter.listen()
        restarted = _bash("deploy/local/up --all", state_dir)
    moved = _exports(restarted.stdout)
    assert moved.pop("SEALTRAIL_INGEST_URL") != env.pop("SEALTRAIL_INGEST_URL")
    assert moved == env
    assert (state_dir / "secrets" / "kek").read_bytes() == kek
    _assert_private(state_dir)
    _bash("deploy/local/down", state_dir)
    assert not _processes_of(state_dir)
