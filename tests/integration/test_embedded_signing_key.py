"""`sealtrail admin signing-key rotate|list --data-dir` on the embedded default, while it runs: the
next checkpoint is signed with the new pair, and the whole log, signed under both, still verifies."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from sealtrail import cli
from sealtrail.audit import audit_live
from sealtrail.cli.embedded.app import EmbeddedOptions, create_app
from sealtrail.cli.embedded.datadir import DataDir, initialise
from sealtrail.core.note import Ed25519Verifier, parse_note
from sealtrail.infra.auth import Role
from sealtrail.sdk import events
from tests.support.embedded import read_rows


def _invoke(*args: str) -> tuple[int, str, str]:
    cli._register()
    result = CliRunner().invoke(cli.app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _latest_note(db: Path) -> tuple[int, str]:
    rows = read_rows(db, "SELECT tree_size, note FROM checkpoints ORDER BY tree_size DESC LIMIT 1")
    return (int(rows[0][0]), str(rows[0][1])) if rows else (0, "")


async def _signed(db: Path, size: int, within_s: float = 20) -> str:
    deadline = time.monotonic() + within_s
    while (latest := _latest_note(db))[0] < size:
        assert time.monotonic() < deadline, f"no checkpoint of size {size} in time"
        await asyncio.sleep(0.05)
    return latest[1]


def _signed_by(note: str, vkey: str) -> bool:
    verifier = Ed25519Verifier.from_vkey(vkey)
    parsed = parse_note(note)
    return any(sig.key_id == verifier.key_id and verifier.verify(parsed.text.encode(), sig.signature)
               for sig in parsed.signatures)


async def test_rotation_on_a_running_data_dir_signs_the_next_checkpoint_with_the_new_key(tmp_path: Path) -> None:
    data = DataDir(tmp_path / "data")
    code, _, err = await asyncio.to_thread(_invoke, "admin", "signing-key", "rotate", "--data-dir", str(data.root))
    assert code == 1 and "no Sealtrail database in" in err
    first = await initialise(data, roles=(Role.GATEWAY, Role.AUDITOR))
    assert first is not None
    gateway = {"Authorization": f"Bearer {first.tokens['gateway'].token}"}
    app = create_app(data, options=EmbeddedOptions(checkpoint_interval_s=0.1, projector_poll_s=0.05))
    call = events.tool_call(agent_id="a", server_id="crm", tool_name="lookup", tool_tier="read", decision="allow",
                            status="ok", payload={"n": 1})
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://serve") as client:
        assert (await client.post("/v1/events", json={"events": [call]}, headers=gateway)).status_code == 202
        old_note = await _signed(data.db, 1)

        code, out, err = await asyncio.to_thread(_invoke, "admin", "signing-key", "rotate", "--data-dir",
                                                 str(data.root))
        assert code == 0, err
        new_checkpoint_vkey, new_cosign_vkey = out.split()
        assert not _signed_by(old_note, new_checkpoint_vkey)

        later = events.tool_call(agent_id="a", server_id="crm", tool_name="lookup", tool_tier="read",
                                 decision="allow", status="ok", payload={"n": 2})
        assert (await client.post("/v1/events", json={"events": [later]}, headers=gateway)).status_code == 202
        assert _signed_by(await _signed(data.db, 2), new_checkpoint_vkey)

        code, out, err = await asyncio.to_thread(_invoke, "admin", "signing-key", "list", "--data-dir",
                                                 str(data.root))
        assert code == 0, err
        lines = [line for line in out.strip().splitlines() if line.split()[0] in ("checkpoint", "cosign")]
        assert len(lines) == 4 and sum(".. now" in line for line in lines) == 2  # (and ingest's receipt key)
        assert any(new_cosign_vkey in line and ".. now" in line for line in lines)

        auditor = first.tokens["auditor"].token
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://serve",
                                     headers={"Authorization": f"Bearer {auditor}"}) as http:
            report = await audit_live(http, first.tenant)
        assert report.entries >= 2 and report.checkpoints >= 2
