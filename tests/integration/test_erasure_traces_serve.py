"""Erasure on ``sealtrail serve`` leaves no trace: once the erasure is answered, no nonce or
ciphertext slice of the erased subject's payloads is in the SQLite database file or its WAL
(``secure_delete`` zeroes the deleted rows, the erasure truncates the WAL), and once the local
log is trimmed (the next pass after the ledger sequenced them) none is in the local log either."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from sealtrail.sdk import events
from tests.support.embedded import read_rows
from tests.support.serve import Served, create_key, start_serve
from tests.support.traces import Sealed, read_all, traced

ALICE, BOB = "user:alice@example.com", "user:bob@example.com"


def _call(subject: str, i: int) -> dict[str, object]:
    return events.tool_call(agent_id="agent-t", server_id="crm", tool_name="lookup", tool_tier="read",
                            decision="allow", status="ok",
                            payload={"arguments": {"who": subject, "n": i, "note": "z" * 900}}, subjects=[subject])


def _sealed(db: Path, event_ids: list[str]) -> list[Sealed]:
    marks = ",".join("?" * len(event_ids))
    rows = read_rows(db, "SELECT p.nonce, p.ciphertext FROM payloads p JOIN entries e"
                         f" ON e.log_id = p.log_id AND e.idx = p.idx WHERE e.event_id IN ({marks})", tuple(event_ids))
    return [(bytes(n), bytes(c)) for n, c in rows]


async def _until(check: object, what: str, within_s: float = 60) -> None:
    deadline = time.monotonic() + within_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"not within {within_s} s: {what}"
        await asyncio.sleep(0.1)


def _files(served: Served) -> tuple[bytes, bytes]:
    """The database file with its WAL, and the local log's files."""
    db = served.data_dir / "sealtrail.db"
    return read_all([db, db.with_name(db.name + "-wal")]), read_all([served.data_dir / "log"])


async def test_erased_payloads_leave_no_bytes_in_the_database_wal_or_local_log(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Alice's and bob's calls are logged (their ciphertexts found in the files and the local log:
    the scan sees what is there); after alice's erasure none of her nonces or ciphertext slices is in the database
    or WAL, and after the next trimming pass none is in the local log; bob's stay in the database."""
    monkeypatch.setenv("SEALTRAIL_LOG_TRIM_INTERVAL_S", "2")
    served = start_serve(tmp_path / "data")
    try:
        dpo = create_key(served, "dpo")
        gateway = {"Authorization": f"Bearer {served.tokens['gateway']}"}
        calls = {s: [_call(s, i) for i in range(20)] for s in (ALICE, BOB)}
        async with httpx.AsyncClient(base_url=served.url, timeout=30) as http:
            sent = await http.post("/v1/events", headers=gateway, json={"events": calls[ALICE] + calls[BOB]})
            assert sent.status_code == 202, sent.text
            in_log = read_all([served.data_dir / "log"])  # durable there once answered 202
            ids = {s: [str(c["event_id"]) for c in cs] for s, cs in calls.items()}
            db = served.data_dir / "sealtrail.db"
            await _until(lambda: len(_sealed(db, ids[ALICE] + ids[BOB])) == 40, "every call logged")
            alice, bob = _sealed(db, ids[ALICE]), _sealed(db, ids[BOB])
            database, _ = _files(served)
            assert traced(database, alice) == 20 and traced(database, bob) == 20
            assert traced(in_log, alice) == 20

            erase = {"subject": ALICE, "request_ref": "DSR-TRACE", "legal_basis": "gdpr.art17"}
            done = await http.post("/v1/subjects/erase", json=erase, headers={"Authorization": f"Bearer {dpo}"})
            assert done.status_code == 200, done.text
            assert done.json()["payloads_deleted"] == 20
            database, _ = _files(served)
            assert traced(database, alice) == 0, "an erased ciphertext is in the database file or its WAL"
            assert traced(database, bob) == 20
            await _until(lambda: traced(_files(served)[1], alice) == 0, "the local log trimmed", within_s=30)
    finally:
        served.stop()
