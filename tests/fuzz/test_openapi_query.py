"""Schemathesis against the real query API (ingest, ledger, projector and query on real PostgreSQL
and Kafka; the query app served by uvicorn on a port), over a log that holds a few calls.

With a key whose role has the operation's scope, every documented operation answers without a
5xx, with a documented status, content type and body schema; without a key, or with a malformed,
unknown or revoked one, every operation except /healthz, /readyz and /metrics answers 401.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import requests

from sealtrail.infra.apikeys import KeyAdmin
from sealtrail.infra.auth_postgres import PostgresAuthStore
from tests.fuzz.harness import FuzzReport, LoopThread, cleanup, fuzz_operations
from tests.support.query import QueryStack, call, drop_database, new_database, on_port, query_stack

pytestmark = pytest.mark.services
PUBLIC = {"GET /healthz", "GET /readyz", "GET /metrics"}


def role_for(method: str, path: str) -> str:
    """The acme key whose role holds the scope the operation needs."""
    if path.startswith("/v1/subjects"):
        return "acme:dpo"
    if path.startswith(("/v1/logs", "/v1/keys")) or path.endswith("/tlog-proof"):
        return "acme:auditor"
    return "acme:investigator"


async def _seed(stack: QueryStack) -> None:
    ids = await stack.send("acme", [call(subjects=["user:alice@example.com"]), call(), call(status="error")])
    await stack.logged("acme", ids)


async def _revoked_token(stack: QueryStack) -> str:
    pool = await asyncpg.create_pool(stack.db_url, min_size=1, max_size=1)
    assert pool is not None
    try:
        from sealtrail.infra.auth import Role

        admin = KeyAdmin(store=PostgresAuthStore(pool=pool))
        issued = await admin.create_key(tenant="acme", role=Role.INVESTIGATOR, label="revoked")
        await admin.revoke_key(issued.key.key_id)
        return issued.token
    finally:
        await pool.close()


@pytest.fixture(scope="module")
def live_query(pg_url: str, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[tuple[QueryStack, str, str]]:
    """The whole stack on its own database with three calls in acme's log; the query API's URL and a
    revoked investigator token."""
    loop = LoopThread()
    try:
        db_url = loop.run(new_database(pg_url))
        loop.enter(cleanup(lambda: drop_database(pg_url, db_url)))
        key_dir: Path = tmp_path_factory.mktemp("fuzz-ledger-keys")
        stack = loop.enter(query_stack(db_url, kafka_bootstrap, key_dir, tenants=("acme",)))
        loop.run(_seed(stack))
        revoked = loop.run(_revoked_token(stack))
        url = loop.enter(on_port(stack.query_app))
        yield stack, url, revoked
    finally:
        loop.close()


def test_valid_keys_every_operation_conforms(live_query: tuple[QueryStack, str, str]) -> None:
    """With a key of the right role: no 5xx, and status, content type and body match the OpenAPI
    document, for every operation."""
    stack, url, _ = live_query
    report = FuzzReport()
    fuzz_operations(url, lambda method, path: stack.auth(role_for(method, path)), report)
    print(report.summary("query, valid keys"))
    assert len(report.cases) >= 20, report.cases
    assert all(n > 0 for n in report.cases.values()), report.cases
    assert not any(status >= 500 for status in report.statuses)


@pytest.mark.parametrize("credential", ["none", "malformed", "unknown", "revoked"])
def test_without_a_valid_key_only_public_operations_answer(live_query: tuple[QueryStack, str, str],
                                                           credential: str) -> None:
    """Without a usable key every non-public operation answers 401 (no authentication bypass)."""
    stack, url, revoked = live_query
    good = stack.tokens["acme:investigator"]
    headers = {
        "none": {},
        "malformed": {"Authorization": "Bearer st_"},
        "unknown": {"Authorization": f"Bearer {good[:-4]}AAAA"},
        "revoked": {"Authorization": f"Bearer {revoked}"},
    }[credential]
    report = FuzzReport()

    def check(label: str, response: Any) -> None:
        if label not in PUBLIC:
            assert response.status_code == 401, (label, response.status_code, response.text)
            assert response.headers["content-type"][0].startswith("application/problem+json")

    fuzz_operations(url, lambda method, path: headers, report, default_examples=4, check=check, validate=False)
    print(report.summary(f"query, credential {credential}"))
    assert len(report.cases) >= 20


@pytest.mark.parametrize("path", [
    "/v1/calls?tool=db%00query", "/v1/calls?agent=a%00", "/v1/calls?session=%00", "/v1/calls?type=x%00",
    "/v1/sessions/s%001", "/v1/logs/ac%00me/checkpoint", "/v1/logs/ac%00me/entries",
])
def test_nul_in_text_parameters_is_a_400_not_a_500(live_query: tuple[QueryStack, str, str], path: str) -> None:
    """A NUL in a text filter or path segment (PostgreSQL cannot store it) is answered as bad input
    (found by the fuzzer: GET /v1/calls?tool=...%00... was a 500), or a plain 404 for a path."""
    stack, url, _ = live_query
    who = "acme:auditor" if path.startswith("/v1/logs") else "acme:investigator"
    resp = requests.get(url + path, headers=stack.auth(who), timeout=30)
    assert resp.status_code in (400, 404), (resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith("application/problem+json")
