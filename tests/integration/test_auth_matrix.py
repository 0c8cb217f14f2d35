"""Every role × every ingest endpoint and admin operation × own and other tenant, on real PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from sealtrail.core.sealing import Kek
from sealtrail.errors import NotFoundError, PermissionDeniedError
from sealtrail.infra.apikeys import Authenticator, KeyAdmin
from sealtrail.infra.auth import Principal, Role
from sealtrail.infra.auth_postgres import PostgresAuthStore
from sealtrail.infra.kek import IndexKeyWrapper
from sealtrail.infra.logs import JsonFormatter, RedactingFilter
from tests.support.ingest import Ingest, event, in_process, make_ingest, records_on

ROLES = list(Role)
TENANTS = ("acme", "beta")


@pytest.fixture
async def ingest(fresh_db_url: str, kafka_bootstrap: str, topic_name: str) -> AsyncIterator[Ingest]:
    running = await make_ingest(fresh_db_url, kafka_bootstrap, topic_name, tenants=TENANTS, roles=ROLES)
    async with in_process(running):
        yield running


@pytest.fixture
async def admin_of(ingest: Ingest, fresh_db_url: str) -> AsyncIterator[tuple[KeyAdmin, Authenticator]]:
    pool = await asyncpg.create_pool(fresh_db_url, min_size=1, max_size=4)
    assert pool is not None
    store = PostgresAuthStore(pool=pool)
    try:
        yield KeyAdmin(store=store), Authenticator(store=store, cache_ttl_s=0)
    finally:
        await pool.close()


async def test_post_events_by_role_and_tenant(ingest: Ingest) -> None:
    """Only gateway keys write; they write into their own tenant's log only, whatever the body says."""
    for role in ROLES:
        for target in TENANTS:
            own = event()
            body = [own if target == "acme" else event(tenant=target)]
            resp = await ingest.client.post("/v1/events", json={"events": body},
                                            headers=ingest.auth(f"acme:{role.value}"))
            if role is not Role.GATEWAY:
                assert resp.status_code == 403, (role, target)
                assert resp.json()["type"].endswith("/forbidden")
            elif target == "acme":
                assert resp.status_code == 202 and resp.json()["accepted"][0]["log"] == "acme"
            else:
                assert resp.status_code == 422 and resp.json()["rejected"][0]["pointer"] == "/events/0/tenant"
    records = await records_on(ingest.settings.kafka_bootstrap, ingest.settings.sealed_topic)
    assert len(records) == 1 and {r.log for r in records} == {r.header["tenant"] for r in records} == {"acme"}


async def test_public_endpoints_answer_every_role_and_none(ingest: Ingest) -> None:
    """/v1/keys, /healthz, /readyz and /metrics hold no tenant data and answer with or without a key."""
    for path in ("/v1/keys", "/healthz", "/readyz", "/metrics"):
        for headers in [{}] + [ingest.auth(f"{t}:{r.value}") for t in TENANTS for r in ROLES]:
            assert (await ingest.client.get(path, headers=headers)).status_code == 200, path


async def test_bad_credentials_are_401(
    ingest: Ingest, admin_of: tuple[KeyAdmin, Authenticator], fresh_db_url: str
) -> None:
    """Missing, malformed, unknown, wrong-secret, revoked and expired keys are all refused with 401."""
    admin, _ = admin_of
    admin_store = await asyncpg.connect(fresh_db_url)
    token = ingest.tokens["acme:gateway"]
    expired = await admin.create_key(tenant="acme", role=Role.GATEWAY, expires_in=timedelta(days=1))
    await admin_store.execute("UPDATE api_keys SET expires_at = $1 WHERE key_id = $2",
                              datetime.now(UTC) - timedelta(seconds=1), expired.key.key_id)
    revoked = await admin.create_key(tenant="acme", role=Role.GATEWAY)
    await admin.revoke_key(revoked.key.key_id)
    cases = {
        "missing": {}, "not bearer": {"Authorization": f"Basic {token}"},
        "malformed": {"Authorization": "Bearer st_nothing"},
        "unknown": {"Authorization": f"Bearer st_{'0' * 16}_{token.split('_', 2)[2]}"},
        "wrong secret": {"Authorization": f"Bearer {token[:-4]}AAAA"},
        "revoked": {"Authorization": f"Bearer {revoked.token}"},
        "expired": {"Authorization": f"Bearer {expired.token}"},
    }
    await admin_store.close()
    for name, headers in cases.items():
        resp = await ingest.client.post("/v1/events", json={"events": [event()]}, headers=headers)
        assert resp.status_code == 401, name
        assert resp.headers["www-authenticate"].startswith("Bearer")
        assert token.split("_", 2)[2] not in resp.text


async def test_rotation_retires_the_old_token(
    ingest: Ingest, admin_of: tuple[KeyAdmin, Authenticator]
) -> None:
    """After rotate, the new token writes with the same gateway id and the old one gets 401."""
    admin, _ = admin_of
    new = await admin.rotate_key(ingest.key_ids["acme:gateway"])
    old = await ingest.client.post("/v1/events", json={"events": [event()]},
                                   headers=ingest.auth("acme:gateway"))
    fresh = await ingest.client.post("/v1/events", json={"events": [event()]},
                                     headers={"Authorization": f"Bearer {new.token}"})
    assert (old.status_code, fresh.status_code) == (401, 202)
    (record,) = await records_on(ingest.settings.kafka_bootstrap, ingest.settings.sealed_topic)
    assert record.header["gateway_id"] == "gateway-1" and new.key.label == "gateway-1"


def _admin_ops(
    admin: KeyAdmin, actor: Principal, target: str, victim: str
) -> dict[str, Callable[[], Awaitable[object]]]:
    return {
        "create": lambda: admin.create_key(tenant=target, role=Role.GATEWAY, actor=actor),
        "list": lambda: admin.list_keys(target, actor=actor),
        "rotate": lambda: admin.rotate_key(victim, actor=actor),
        "revoke": lambda: admin.revoke_key(victim, actor=actor),
    }


async def _actor(auth: Authenticator, ingest: Ingest, who: str) -> Principal:
    return await auth.authenticate(f"Bearer {ingest.tokens[who]}")


async def test_admin_operations_by_role_and_tenant(
    ingest: Ingest, admin_of: tuple[KeyAdmin, Authenticator]
) -> None:
    """Only operator keys administer, only their own tenant (another tenant looks absent), and
    no key can create a tenant: that takes the local command line."""
    admin, auth = admin_of
    for role in ROLES:
        actor = await _actor(auth, ingest, f"acme:{role.value}")
        for target in TENANTS:
            victim = (await admin.create_key(tenant=target, role=Role.AUDITOR)).key.key_id
            for name, op in _admin_ops(admin, actor, target, victim).items():
                if role is not Role.OPERATOR:
                    with pytest.raises(PermissionDeniedError):
                        await op()
                elif target != "acme":
                    with pytest.raises(NotFoundError):
                        await op()
                else:
                    assert await op() is not None, name
        with pytest.raises(PermissionDeniedError):
            await admin.create_tenant("gamma", kek=IndexKeyWrapper(kek=Kek.generate(), tenant="gamma"),
                                      actor=actor)
    operator = await _actor(auth, ingest, "acme:operator")
    assert [t.tenant_id for t in await admin.list_tenants(actor=operator)] == ["acme"]


async def test_tokens_never_reach_the_logs(ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    """Requests with good, bad and revoked tokens log nothing of their secrets, even when the
    redacting handler is given a message that quotes one."""
    handler_records: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            handler_records.append(self.format(record))

    capture = Capture()
    capture.setFormatter(JsonFormatter())
    capture.addFilter(RedactingFilter())
    logging.getLogger().addHandler(capture)
    caplog.set_level(logging.DEBUG)
    try:
        for who in ingest.tokens:
            await ingest.client.post("/v1/events", json={"events": [event()]}, headers=ingest.auth(who))
        await ingest.client.post("/v1/events", headers={"Authorization": "Bearer st_0123456789abcdef_x"})
        logging.getLogger("sealtrail.test").warning("careless %s", ingest.tokens["acme:gateway"])
    finally:
        logging.getLogger().removeHandler(capture)
    secrets = [t.split("_", 2)[2] for t in ingest.tokens.values()]
    raw = "\n".join(r.getMessage() for r in caplog.records if r.name != "sealtrail.test")
    assert not [s for s in secrets if s in raw]
    assert handler_records and not [s for s in secrets for line in handler_records if s in line]
    assert any("[redacted]" in line for line in handler_records)


async def test_operator_and_gateway_http_matrix_is_complete(ingest: Ingest) -> None:
    """Sanity of the fixtures: one working key per tenant and role, ten in all."""
    assert sorted(ingest.tokens) == sorted(f"{t}:{r.value}" for t in TENANTS for r in ROLES)
    answers = [await ingest.client.post("/v1/events", json={"events": []}, headers=ingest.auth(who))
               for who in ingest.tokens]
    assert sorted({a.status_code for a in answers}) == [403, 422]

