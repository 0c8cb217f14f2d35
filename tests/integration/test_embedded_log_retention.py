"""``sealtrail serve`` deletes local-log segments once their records are logged (and old enough),
keeps everything it accepted, and starts again over a log whose first segments are gone."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from sealtrail.audit import audit_live
from sealtrail.cli.embedded.app import EmbeddedOptions, create_app
from sealtrail.cli.embedded.datadir import SEALED_TOPIC, DataDir, initialise
from sealtrail.infra.auth import Role
from sealtrail.sdk import events
from tests.support.embedded import read_rows

OPTIONS = EmbeddedOptions(checkpoint_interval_s=0.1, projector_poll_s=0.05, log_segment_bytes=8192,
                          log_retention_s=0, log_retention_interval_s=0.1)


def _entries(db: Path) -> int:
    return int(read_rows(db, "SELECT count(*) FROM entries")[0][0])


def _first_bases(data: DataDir) -> list[int]:
    """The base offset of the first segment file of each sealed-topic partition that has one."""
    out = []
    for part in sorted((data.log / SEALED_TOPIC).iterdir()):
        if part.is_dir():
            files = sorted(part.glob("*.log"))
            if files:
                out.append(int(files[0].stem))
    return out


async def _until(check: object, what: str, within_s: float = 30) -> None:
    deadline = time.monotonic() + within_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"not within {within_s} s: {what}"
        await asyncio.sleep(0.05)


async def _send(data: DataDir, token: str, auditor: str, batches: int, tenant: str) -> int:
    app = create_app(data, options=OPTIONS)
    headers = {"Authorization": f"Bearer {token}"}
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://serve") as client:
        before = _entries(data.db)
        for b in range(batches):
            batch = [events.tool_call(agent_id="a", server_id="crm", tool_name="lookup", tool_tier="read",
                                      decision="allow", status="ok", payload={"n": b, "pad": "x" * 300})
                     for _ in range(20)]
            sent = await client.post("/v1/events", json={"events": batch}, headers=headers)
            assert sent.status_code == 202, sent.text
        await _until(lambda: _entries(data.db) == before + 20 * batches, "every event logged")
        await _until(lambda: any(base > 0 for base in _first_bases(data)), "a logged segment deleted")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://serve",
                                     headers={"Authorization": f"Bearer {auditor}"}) as http:
            await _until_signed(http, tenant, before + 20 * batches)
            report = await audit_live(http, tenant)
        return report.entries


async def _until_signed(http: httpx.AsyncClient, tenant: str, size: int) -> None:
    for _ in range(600):
        cp = await http.get(f"/v1/logs/{tenant}/checkpoint")
        if cp.status_code == 200 and f"\n{size}\n" in cp.text:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no checkpoint of size {size}")


async def test_logged_segments_are_deleted_and_nothing_accepted_is_lost(tmp_path: Path) -> None:
    data = DataDir(tmp_path / "data")
    first = await initialise(data, roles=(Role.GATEWAY, Role.AUDITOR))
    assert first is not None
    token, auditor = first.tokens["gateway"].token, first.tokens["auditor"].token
    assert await _send(data, token, auditor, 10, first.tenant) == 200
    assert await _send(data, token, auditor, 3, first.tenant) == 260  # restarted over a trimmed log
