"""Data subjects over the real stack: export with access events, legal holds, and the erasure of
a subject with 2,000 calls after which nothing can return or decrypt them and the log verifies."""

from __future__ import annotations

import time
import uuid

import orjson
import pytest

from sealtrail.audit import audit_live
from sealtrail.audit.client import http_client
from sealtrail.core.erasure import verify_erasure_receipt
from sealtrail.core.sealing import subject_ref
from sealtrail.core.verify import verifier_from_vkey
from sealtrail.errors import UnavailableError
from sealtrail.infra.kek import IndexKeyWrapper
from tests.e2e.conftest import Seed
from tests.support.query import QueryStack, call

DPO = "acme:dpo"
DAVE, ERIN = "user:dave@example.com", "user:erin@example.com"


async def test_export_returns_the_subjects_payloads_and_logs_each_access(stack: QueryStack, seed: Seed) -> None:
    """A DPO's export holds exactly the subject's calls with decrypted payloads, and one access
    event (action export, one export_ref) per payload is in the log; roles without
    subjects:export are refused."""
    resp = await stack.api.post("/v1/subjects/export", headers=stack.auth(DPO),
                                json={"subject": "USER:alice@EXAMPLE.com", "purpose": "gdpr.art15"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    sent = {e["event_id"]: e["payload"] for e in seed.acme}
    assert {e["header"]["event_id"] for e in body["entries"]} == set(seed.alice)
    assert all(e["payload"] == sent[e["header"]["event_id"]] for e in body["entries"])
    assert body["access_events"] == len(seed.alice) and body["next"] is None
    rows = await _logged_access(stack, "acme", body["export_ref"], len(seed.alice))
    assert {r["target_event_id"] for r in rows} == set(seed.alice)
    assert {(r["action"], r["purpose_code"], r["accessor_key_id"]) for r in rows} == {
        ("export", "gdpr.art15", stack.key_ids[DPO])}
    for who in ("acme:investigator", "acme:auditor", "acme:operator", "acme:gateway"):
        denied = await stack.api.post("/v1/subjects/export", headers=stack.auth(who),
                                      json={"subject": "user:alice@example.com", "purpose": "x"})
        assert denied.status_code == 403, who


async def _logged_access(stack: QueryStack, tenant: str, export_ref: str, count: int) -> list[dict[str, str]]:
    deadline = time.monotonic() + 30
    while True:
        rows = await stack.pool.fetch("SELECT event_id::text AS id, entry FROM entries WHERE log_id = $1"
                                      " AND type = 'access'", tenant)
        found = [orjson.loads(r["entry"]) for r in rows]
        mine = [h for h in found if h.get("export_ref") == export_ref]
        if len(mine) >= count:
            await stack.logged(tenant, [h["event_id"] for h in mine])
            return mine
        assert time.monotonic() < deadline
        await stack.settle({tenant: 1})


async def test_legal_hold_refuses_erasure_until_cleared(stack: QueryStack) -> None:
    """A subject under legal hold is refused with the hold's reason (409, nothing destroyed);
    after the hold is cleared the same request erases it, and the history shows it."""
    who, subject = "erase:dpo", "user:carol@example.com"
    await stack.send("erase", [call(subjects=[subject], payload={"args": {"q": "carol"}})])
    hold = await stack.api.put("/v1/subjects/hold", headers=stack.auth(who),
                               json={"subject": subject, "reason": "litigation", "case_ref": "CASE-9"})
    assert hold.status_code == 200
    refused = await stack.api.post("/v1/subjects/erase", headers=stack.auth(who),
                                   json={"subject": subject, "request_ref": "DSR-C1", "legal_basis": "gdpr.art17"})
    assert refused.status_code == 409 and refused.json()["type"].endswith("/legal-hold")
    assert "litigation" in refused.json()["detail"] and "carol" not in refused.text
    history = await stack.api.get("/v1/subjects/erasures", params={"subject": subject}, headers=stack.auth(who))
    assert history.json() == {"erasures": [], "hold": {**history.json()["hold"], "reason": "litigation"},
                              "released_holds": [], "inconsistent": []}
    unexplained = await stack.api.request("DELETE", "/v1/subjects/hold", headers=stack.auth(who),
                                          json={"subject": subject})
    assert unexplained.status_code == 400 and unexplained.json()["pointer"] == "/reason"
    assert "releasing a legal hold needs a reason" in unexplained.json()["detail"]
    cleared = await stack.api.request("DELETE", "/v1/subjects/hold", headers=stack.auth(who),
                                      json={"subject": subject, "reason": "litigation.closed"})
    assert cleared.status_code == 204
    done = await stack.api.post("/v1/subjects/erase", headers=stack.auth(who),
                                json={"subject": subject, "request_ref": "DSR-C1", "legal_basis": "gdpr.art17"})
    assert done.status_code == 200 and done.json()["state"] == "done"
    history = await stack.api.get("/v1/subjects/erasures", params={"subject": " USER:carol@EXAMPLE.com"},
                                  headers=stack.auth(who))
    assert [r["request_ref"] for r in history.json()["erasures"]] == ["DSR-C1"] and history.json()["hold"] is None
    (released,) = history.json()["released_holds"]
    assert (released["reason"], released["case_ref"], released["release_reason"]) == (
        "litigation", "CASE-9", "litigation.closed")
    await stack.logged("erase", [done.json()["event_id"]])


async def test_erasing_a_subject_with_2000_calls(stack: QueryStack) -> None:
    """Erasing Dave (2,000 calls) destroys his key and ciphertexts and index rows, returns a
    receipt signed by the query key; afterwards no API or table returns or decrypts his
    payloads, Erin's are untouched, a retry returns the same erasure, and the log still
    verifies with Dave's payloads reported as explained by the erasure event."""
    who = "erase:dpo"
    dave = await stack.send("erase", [call(subjects=[DAVE], payload={"args": {"q": f"dave {i}"}})
                                      for i in range(2000)])
    erin = await stack.send("erase", [call(subjects=[ERIN], payload={"args": {"q": f"erin {i}"}})
                                      for i in range(50)])
    await stack.logged("erase", dave + erin)
    ref = await _subject_ref(stack, "erase", DAVE)
    (dave_key,) = {r["key_id"] for r in await stack.pool.fetch(
        "SELECT key_id FROM subject_index WHERE tenant_id = 'erase' AND subject_ref = $1", ref)}

    started = time.perf_counter()
    resp = await stack.api.post("/v1/subjects/erase", headers=stack.auth(who),
                                json={"subject": DAVE, "request_ref": "DSR-2026-17", "legal_basis": "gdpr.art17"})
    elapsed = time.perf_counter() - started
    assert resp.status_code == 200, resp.text
    record = resp.json()
    assert (record["payloads_deleted"], record["index_rows_deleted"]) == (2000, 2000)
    assert record["erased_key_ids"] == [dave_key] and elapsed < 10
    keys = (await stack.api.get("/v1/keys", headers=stack.auth("erase:auditor"))).json()["keys"]
    receipt_key = verifier_from_vkey(next(k["vkey"] for k in keys if k["purpose"] == "erasure-receipt"))
    receipt = verify_erasure_receipt(record["receipt"], [receipt_key])
    assert (receipt.tenant, receipt.request_ref, receipt.erased_key_ids) == ("erase", "DSR-2026-17", (dave_key,))
    assert receipt.clear_by_ms > receipt.erased_ms and "dave" not in record["receipt"]

    await _nothing_of_dave_remains(stack, ref, dave_key, dave)
    await _erin_is_untouched(stack, erin)
    again = await stack.api.post("/v1/subjects/erase", headers=stack.auth(who),
                                 json={"subject": "user:dave@EXAMPLE.com", "request_ref": "DSR-2026-17",
                                       "legal_basis": "gdpr.art17"})
    assert again.json() == record
    other = await stack.api.post("/v1/subjects/erase", headers=stack.auth(who),
                                 json={"subject": ERIN, "request_ref": "DSR-2026-17", "legal_basis": "gdpr.art17"})
    assert other.status_code == 409

    await stack.logged("erase", [record["event_id"]])
    event = orjson.loads(await stack.pool.fetchval("SELECT entry FROM entries WHERE event_id = $1",
                                                   uuid.UUID(record["event_id"])))
    assert event["type"] == "erasure" and event["erased_key_ids"] == [dave_key]
    assert b"dave" not in orjson.dumps(event)
    listed = (await stack.api.get("/v1/logs/erase/erasures", headers=stack.auth("erase:auditor"))).json()
    assert record["event_id"] in [e["header"]["event_id"] for e in listed["events"]]
    async with http_client("http://query", stack.tokens["erase:auditor"], transport=stack.api._transport) as http:
        report = await audit_live(http, "erase")
    assert report.payloads_erased >= 2000 and report.erasure_events >= 1


async def _subject_ref(stack: QueryStack, tenant: str, subject: str) -> bytes:
    row = await stack.pool.fetchrow("SELECT index_key, index_key_kek FROM tenants WHERE tenant_id = $1", tenant)
    key = IndexKeyWrapper(kek=stack.kek, tenant=tenant).unwrap(bytes(row["index_key"]), kek_id=row["index_key_kek"])
    return subject_ref(key, subject)


async def _nothing_of_dave_remains(stack: QueryStack, ref: bytes, key_id: str, calls: list[str]) -> None:
    """No table holds his ciphertexts, key secret, subject_ref link or index rows; no API
    returns his payloads."""
    pool = stack.pool
    assert await pool.fetchval("SELECT count(*) FROM payloads WHERE key_ids && ARRAY[$1]", key_id) == 0
    key_row = await pool.fetchrow("SELECT state, wrapped, subject_ref FROM data_keys WHERE key_id = $1", key_id)
    assert (key_row["state"], key_row["wrapped"], key_row["subject_ref"]) == ("erased", None, None)
    assert await pool.fetchval("SELECT count(*) FROM subject_index WHERE subject_ref = $1 OR key_id = $2",
                               ref, key_id) == 0
    inv = stack.auth("erase:investigator")
    assert (await stack.api.get("/v1/calls", params={"subject": DAVE}, headers=inv)).json()["calls"] == []
    revealed = (await stack.api.get(f"/v1/calls/{calls[7]}", params={"purpose": "check"}, headers=inv)).json()
    assert revealed["payload"] is None and revealed["payload_state"] == "erased"
    assert "access_event_id" not in revealed
    export = await stack.api.post("/v1/subjects/export", headers=stack.auth("erase:dpo"),
                                  json={"subject": DAVE, "purpose": "gdpr.art15"})
    assert export.json()["entries"] == []


async def _erin_is_untouched(stack: QueryStack, erin: list[str]) -> None:
    revealed = await stack.api.get(f"/v1/calls/{erin[3]}", params={"purpose": "check"},
                                   headers=stack.auth("erase:investigator"))
    assert revealed.json()["payload"] == {"args": {"q": "erin 3"}}
    export = await stack.api.post("/v1/subjects/export", headers=stack.auth("erase:dpo"),
                                  json={"subject": ERIN, "purpose": "gdpr.art15"})
    assert len(export.json()["entries"]) == 50
    ids = [revealed.json()["access_event_id"]]
    await stack.logged("erase", ids)


async def test_an_erasure_cut_short_before_its_event_finishes_on_retry(
        stack: QueryStack, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the erasure event cannot be published (503), the key and ciphertexts are already
    gone; repeating the request finishes the same erasure, with the event id chosen the first
    time, the same counts, and one erasure event in the log."""
    subject, who = "user:fred@example.com", "erase:dpo"
    calls = await stack.send("erase", [call(subjects=[subject]) for _ in range(30)])
    await stack.logged("erase", calls)
    service = stack.query_app.state.query

    async def unavailable(*_: object) -> None:
        raise UnavailableError("Kafka did not acknowledge")

    body = {"subject": subject, "request_ref": "DSR-F1", "legal_basis": "gdpr.art17"}
    with monkeypatch.context() as patch:
        patch.setattr(service.eraser, "_append_event", unavailable)
        cut = await stack.api.post("/v1/subjects/erase", headers=stack.auth(who), json=body)
    assert cut.status_code == 503 and cut.headers["retry-after"]
    pending = (await stack.api.get("/v1/subjects/erasures", params={"request_ref": "DSR-F1"},
                                   headers=stack.auth(who))).json()["erasures"][0]
    assert (pending["state"], pending["payloads_deleted"], pending["receipt"]) == ("pending", 30, None)
    done = await stack.api.post("/v1/subjects/erase", headers=stack.auth(who), json=body)
    assert done.status_code == 200, done.text
    record = done.json()
    assert (record["state"], record["event_id"], record["payloads_deleted"]) == ("done", pending["event_id"], 30)
    await stack.logged("erase", [record["event_id"]])
    count = await stack.pool.fetchval("SELECT count(*) FROM entries WHERE log_id = 'erase' AND type = 'erasure'"
                                      " AND entry LIKE $1::bytea", b"%DSR-F1%")
    assert count == 1
