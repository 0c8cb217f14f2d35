"""Payload retention over the real stack: `sealtrail admin tenant retention` and `sealtrail admin
retention run` expire old months' period keys, delete their ciphertexts, log retention events,
and leave a log that verifies with the expired payloads explained."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from sealtrail.audit import audit_live
from sealtrail.audit.client import http_client
from sealtrail.core.events import ToolCallEvent
from sealtrail.core.keystore import period_of
from sealtrail.infra.emitter import Emission, EventEmitter
from sealtrail.infra.kafka import KafkaPublisher
from sealtrail.infra.keystore_postgres import PostgresKeyStore
from tests.support.query import QueryStack, call

TENANT = "retain"


def _admin(stack: QueryStack, *args: str) -> subprocess.CompletedProcess[str]:
    s = stack.settings
    assert s.kek is not None
    env = {**os.environ, "SEALTRAIL_DATABASE_URL": s.database_url.get_secret_value(),
           "SEALTRAIL_KEK": s.kek.get_secret_value(), "SEALTRAIL_KAFKA_BOOTSTRAP": s.kafka_bootstrap,
           "SEALTRAIL_SEALED_TOPIC": s.sealed_topic, "SEALTRAIL_TOPIC_PARTITIONS": str(s.topic_partitions)}
    return subprocess.run([sys.executable, "-m", "sealtrail.cli.main", "admin", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


async def _old_calls(stack: QueryStack, when: datetime, count: int) -> list[str]:
    """Calls sealed under the period key of ``when``'s month, as ingest sealed them back then."""
    publisher = KafkaPublisher(bootstrap=stack.settings.kafka_bootstrap)
    await publisher.start()
    try:
        emitter = EventEmitter(keystore=PostgresKeyStore(pool=stack.pool, kek=stack.kek), publisher=publisher,
                               topic=stack.settings.sealed_topic, writer="gateway-1", clock=lambda: when)
        events = []
        for i in range(count):
            raw = call(occurred_at=when, payload=None)
            events.append(Emission(ToolCallEvent.model_validate(raw), {"args": {"q": f"old {i}"}}))
        return [r.event_id for r in await emitter.emit(TENANT, events)]
    finally:
        await publisher.stop()


async def test_retention_expires_old_months_and_the_log_still_verifies(stack: QueryStack) -> None:
    """With one month of retention, a month three months old loses its period key and its 20
    payloads; a retention event says so; current payloads stay; the log verifies; a second
    run does nothing."""
    old_when = datetime.now(UTC) - timedelta(days=95)
    old = await _old_calls(stack, old_when, 20)
    new = await stack.send(TENANT, [call(payload={"args": {"q": f"new {i}"}}) for i in range(10)])
    await stack.logged(TENANT, old + new)

    set_it = await asyncio.to_thread(_admin, stack, "tenant", "retention", TENANT, "--months", "1")
    assert set_it.returncode == 0, set_it.stderr
    ran = await asyncio.to_thread(_admin, stack, "retention", "run", "--tenant", TENANT)
    assert ran.returncode == 0, ran.stderr
    period = period_of(old_when)
    assert f"{TENANT} {period}: period key" in ran.stdout and "20 payloads deleted" in ran.stdout
    key_id = ran.stdout.split("period key ")[1].split()[0]
    assert await stack.pool.fetchval("SELECT count(*) FROM payloads WHERE key_ids && ARRAY[$1]", key_id) == 0
    assert await stack.pool.fetchval("SELECT state FROM data_keys WHERE key_id = $1", key_id) == "erased"

    inv = stack.auth(f"{TENANT}:investigator")
    gone = (await stack.api.get(f"/v1/calls/{old[0]}", params={"purpose": "check"}, headers=inv)).json()
    assert (gone["payload_state"], gone["payload"]) == ("expired", None)
    kept = (await stack.api.get(f"/v1/calls/{new[0]}", params={"purpose": "check"}, headers=inv)).json()
    assert kept["payload"] == {"args": {"q": "new 0"}}
    event_id = ran.stdout.rsplit("event ", 1)[1].strip()
    await stack.logged(TENANT, [event_id, kept["access_event_id"]])
    async with http_client("http://query", stack.tokens[f"{TENANT}:auditor"], transport=stack.api._transport) as h:
        report = await audit_live(h, TENANT)
    assert (report.payloads_expired, report.retention_events) == (20, 1)

    again = await asyncio.to_thread(_admin, stack, "retention", "run", "--tenant", TENANT)
    assert again.returncode == 0 and again.stdout == ""
