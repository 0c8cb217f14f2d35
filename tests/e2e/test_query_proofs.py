"""Proofs for auditors over the real stack, checked with the pure verifier; `sealtrail verify` and
`sealtrail export` against a live query API on a real port."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
from pathlib import Path

from sealtrail.audit import audit_live
from sealtrail.audit.client import http_client
from sealtrail.core.checkpoint import parse_checkpoint
from sealtrail.core.note import parse_note
from sealtrail.core.tlogproof import verify_proof
from sealtrail.core.verify import check_consistency, check_inclusion, verifier_from_vkey
from tests.e2e.conftest import Seed
from tests.support.query import QueryStack, on_port

AUDITOR = "acme:auditor"


async def _json(stack: QueryStack, path: str, **params: object) -> dict[str, object]:
    resp = await stack.api.get(path, params=params, headers=stack.auth(AUDITOR))
    assert resp.status_code == 200, resp.text
    body: dict[str, object] = resp.json()
    return body


async def test_checkpoints_entries_and_proofs_verify(stack: QueryStack, seed: Seed) -> None:
    """The latest checkpoint is a signed note under the published keys; entries, inclusion and
    consistency proofs and a tlog-proof file all verify against it with the pure verifier."""
    keys = await _json(stack, "/v1/keys")
    verifiers = [verifier_from_vkey(k["vkey"]) for k in keys["keys"]]  # type: ignore[index, union-attr]
    assert {k["purpose"] for k in keys["keys"]} >= {"checkpoint", "cosign", "erasure-receipt"}  # type: ignore[union-attr]
    note = (await stack.api.get("/v1/logs/acme/checkpoint", headers=stack.auth(AUDITOR))).text
    latest = parse_checkpoint(parse_note(note).text)
    logs = await _json(stack, "/v1/logs")
    assert logs["logs"] == [{"log": "acme", "origin": latest.origin, "size": logs["logs"][0]["size"]}]  # type: ignore[index]
    page = await _json(stack, "/v1/logs/acme/entries", start=0, end=latest.size)
    entries = [base64.b64decode(e["entry"]) for e in page["entries"]]  # type: ignore[union-attr, index]
    assert len(entries) == latest.size
    assert all(e["payload_present"] and e["payload_digest"].startswith("blake3:")  # type: ignore[index]
               for e in page["entries"])  # type: ignore[union-attr]
    for index in (0, 7, latest.size - 1):
        proof = await _json(stack, "/v1/logs/acme/proof/inclusion", index=index, size=latest.size)
        check_inclusion(entries[index], index, [base64.b64decode(h) for h in proof["proof"]], latest)  # type: ignore[union-attr]
    cps = (await _json(stack, "/v1/logs/acme/checkpoints"))["checkpoints"]
    first = parse_checkpoint(parse_note(cps[0]["note"]).text)  # type: ignore[index]
    if first.size < latest.size:
        proof = await _json(stack, "/v1/logs/acme/proof/consistency", **{"from": first.size, "to": latest.size})
        check_consistency(first, latest, [base64.b64decode(h) for h in proof["proof"]])  # type: ignore[union-attr]
    target = seed.acme[3]["event_id"]
    file = (await stack.api.get(f"/v1/events/{target}/tlog-proof", headers=stack.auth(AUDITOR))).text
    index = next(i for i, e in enumerate(entries) if target.encode() in e)
    assert verify_proof(file, entries[index], verifiers).size == latest.size


async def test_proof_requests_out_of_range_are_problems(stack: QueryStack, seed: Seed) -> None:
    """An index past the size, a size past the log, a page over 1000 entries, and another
    tenant's log are 400 or 404 problems."""
    size = await stack.log_size("acme")
    for path, params, status in (
        ("/v1/logs/acme/proof/inclusion", {"index": 5, "size": 5}, 400),
        ("/v1/logs/acme/proof/inclusion", {"index": 0, "size": size + 10}, 400),
        ("/v1/logs/acme/proof/consistency", {"from": 9, "to": 3}, 400),
        ("/v1/logs/acme/entries", {"start": 0, "end": 5000}, 400),
        ("/v1/logs/beta/entries", {"start": 0, "end": 5}, 404),
        ("/v1/logs/beta/checkpoint", {}, 404),
    ):
        resp = await stack.api.get(path, params=params, headers=stack.auth(AUDITOR))
        assert resp.status_code == status, (path, params, resp.text)
        assert resp.headers["content-type"] == "application/problem+json"


def _cli(*args: str, token: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SEALTRAIL_TOKEN": token}
    return subprocess.run([sys.executable, "-m", "sealtrail.cli.main", *args], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


async def test_verify_live_export_and_verify_bundle(stack: QueryStack, seed: Seed, tmp_path: Path) -> None:
    """`sealtrail verify --url` passes on the live log, `sealtrail export` writes a directory and a
    tar bundle, and `sealtrail verify bundle` passes on both offline, with the same counts."""
    token = stack.tokens[AUDITOR]
    async with on_port(stack.query_app) as url:
        live = await asyncio.to_thread(_cli, "verify", "--url", url, "--log", "acme", token=token)
        assert live.returncode == 0, live.stderr
        assert live.stdout.startswith("OK: ") and "entries" in live.stdout and live.stdout.count("\n") == 1
        for out in (tmp_path / "bundle", tmp_path / "bundle.tar.gz"):
            done = await asyncio.to_thread(_cli, "export", "--url", url, "--log", "acme", "--out", str(out),
                                           token=token)
            assert done.returncode == 0, done.stderr
            offline = await asyncio.to_thread(_cli, "verify", "bundle", str(out), token="")
            assert offline.returncode == 0, offline.stderr
            assert offline.stdout.split(":", 2)[2] == live.stdout.split(":", 2)[2]
        state = tmp_path / "acme.checkpoint"
        first = await asyncio.to_thread(_cli, "verify", "--url", url, "--log", "acme", "--state", str(state),
                                        token=token)
        assert first.returncode == 0 and f"remembered in {state}" in first.stdout, first.stderr
        again = await asyncio.to_thread(_cli, "verify", "bundle", str(tmp_path / "bundle"), "--state", str(state),
                                        token="")
        assert again.returncode == 0, again.stderr
        assert "consistent with the checkpoint at size" in again.stdout
        denied = await asyncio.to_thread(_cli, "verify", "live", "--url", url, "--log", "acme",
                                         token=stack.tokens["acme:operator"])
        assert denied.returncode == 1 and "403" in denied.stderr


async def test_in_process_audit_reports_counts(stack: QueryStack, seed: Seed) -> None:
    """The library audit over an in-process client covers every entry up to the latest checkpoint."""
    http = http_client("http://query", stack.tokens[AUDITOR], transport=stack.api._transport)
    async with http:
        report = await audit_live(http, "acme")
    assert report.entries >= len(seed.acme) and report.payloads_present == report.entries
