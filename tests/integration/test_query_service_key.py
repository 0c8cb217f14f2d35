"""The query service refuses to start with ingest's receipt key, or a key named like it (real PostgreSQL)."""

from __future__ import annotations

import os
from pathlib import Path

import asyncpg
import pytest
from pydantic import SecretStr

from sealtrail.core.note import generate_key
from sealtrail.core.receipt import CachedEd25519Signer
from sealtrail.errors import ServiceStartError
from sealtrail.infra.postgres import migrate_url
from sealtrail.infra.servicekey import load_service_signer
from sealtrail.infra.settings import Settings
from services.ingest.app import publish_receipt_key
from services.query.app import create_app

pytestmark = pytest.mark.services


def _key_file(path: Path, name: str) -> Path:
    private, _ = generate_key(name)
    path.write_text(private + "\n")
    path.chmod(0o600)
    return path


async def _start_query(db_url: str, key_file: Path) -> None:
    """Start the query app without Kafka: a start that passes the key check fails on Kafka instead."""
    settings = Settings(database_url=SecretStr(db_url), kek=SecretStr(os.urandom(32).hex()),
                        service_key_file=key_file, kafka_bootstrap="")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        pass  # pragma: no cover - the start must fail first


async def _record_as_ingest(db_url: str, key_file: Path) -> None:
    """What ingest does when it starts: record its receipt vkey in signing_keys."""
    await migrate_url(db_url)
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=1)
    assert pool is not None
    try:
        await publish_receipt_key(pool, CachedEd25519Signer(load_service_signer(key_file)))
    finally:
        await pool.close()


async def test_query_refuses_ingest_receipt_key(fresh_db_url: str, tmp_path: Path) -> None:
    """The very key file ingest signs receipts with: one reason, naming the setting and what to do."""
    ingest_key = _key_file(tmp_path / "receipt.key", "audit.example.org/ingest")
    await _record_as_ingest(fresh_db_url, ingest_key)
    with pytest.raises(ServiceStartError) as caught:
        await _start_query(fresh_db_url, ingest_key)
    assert str(caught.value).startswith(
        "query cannot start: its service key (SEALTRAIL_SERVICE_KEY_FILE) is ingest's receipt key"
        " 'audit.example.org/ingest'; give query its own key")


async def test_query_refuses_a_key_named_like_ingest_receipt_key(fresh_db_url: str, tmp_path: Path) -> None:
    """Another key under ingest's key name would make the two receipt kinds indistinguishable by name."""
    await _record_as_ingest(fresh_db_url, _key_file(tmp_path / "receipt.key", "sealtrail-ingest"))
    with pytest.raises(ServiceStartError, match="has the name of ingest's receipt key 'sealtrail-ingest'"):
        await _start_query(fresh_db_url, _key_file(tmp_path / "query.key", "sealtrail-ingest"))


async def test_query_with_its_own_key_passes_the_check(fresh_db_url: str, tmp_path: Path) -> None:
    """A key of its own passes: the start goes on to the next missing setting (Kafka)."""
    await _record_as_ingest(fresh_db_url, _key_file(tmp_path / "receipt.key", "audit.example.org/ingest"))
    with pytest.raises(ServiceStartError, match="SEALTRAIL_KAFKA_BOOTSTRAP is not set"):
        await _start_query(fresh_db_url, _key_file(tmp_path / "query.key", "audit.example.org/query"))


async def test_ingest_refuses_the_key_a_query_service_recorded_first(fresh_db_url: str, tmp_path: Path) -> None:
    """Query started first records its erasure-receipt key; ingest then refuses to start with that
    key (or one named like it) and starts with a key of its own, whichever order they start in."""
    query_key = _key_file(tmp_path / "query.key", "audit.example.org/query")
    await migrate_url(fresh_db_url)
    with pytest.raises(ServiceStartError, match="SEALTRAIL_KAFKA_BOOTSTRAP is not set"):
        await _start_query(fresh_db_url, query_key)  # past the key check: the key is recorded
    with pytest.raises(ServiceStartError) as caught:
        await _record_as_ingest(fresh_db_url, query_key)
    assert str(caught.value).startswith(
        "ingest cannot start: its receipt key (SEALTRAIL_SERVICE_KEY_FILE) is the query service's erasure-receipt"
        " key 'audit.example.org/query'; give ingest its own key")
    with pytest.raises(ServiceStartError, match="has the name of the query service's erasure-receipt key"):
        await _record_as_ingest(fresh_db_url, _key_file(tmp_path / "other.key", "audit.example.org/query"))
    await _record_as_ingest(fresh_db_url, _key_file(tmp_path / "ingest.key", "audit.example.org/ingest"))
