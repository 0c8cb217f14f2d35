"""Session fixtures: the real PostgreSQL and Kafka that integration tests run against.

They start lazily, only when a test asks for them, on 127.0.0.1 and free ports, from the same
code as ``deploy/local/up``, and stop when the session ends. ``SEALTRAIL_TEST_DATABASE_URL`` and
``SEALTRAIL_TEST_KAFKA_BOOTSTRAP`` point the tests at servers started elsewhere instead. A
service that cannot start FAILS the tests that need it, with the reason; nothing skips.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from sealtrail.devstack import KafkaServer, PostgresServer
from sealtrail.errors import ServiceStartError
from tests.support.servers import remove_datadir, server_datadir

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "vectors"


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a real PostgreSQL server's ``sealtrail`` database."""
    external = os.environ.get("SEALTRAIL_TEST_DATABASE_URL")
    if external:
        yield external
        return
    datadir = server_datadir("postgres")
    server = PostgresServer(datadir=datadir)
    try:
        try:
            server.start()
        except ServiceStartError as e:
            server.stop()
            pytest.fail(f"PostgreSQL could not start, so this test cannot run:\n{e}", pytrace=False)
        yield server.url
    finally:
        server.stop()
        remove_datadir(datadir)


@pytest.fixture(scope="session")
def kafka_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaServer | None]:
    """The Kafka broker this run started (None when an external one is used)."""
    if os.environ.get("SEALTRAIL_TEST_KAFKA_BOOTSTRAP"):
        yield None
        return
    server = KafkaServer(datadir=tmp_path_factory.mktemp("kafka"))
    try:
        server.start()
    except ServiceStartError as e:
        server.stop()
        pytest.fail(f"Kafka could not start, so this test cannot run:\n{e}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_server: KafkaServer | None) -> str:
    """bootstrap.servers of a real Kafka broker."""
    if kafka_server is None:
        return os.environ["SEALTRAIL_TEST_KAFKA_BOOTSTRAP"]
    return kafka_server.bootstrap


@pytest.fixture
async def fresh_db_url(pg_url: str) -> AsyncIterator[str]:
    """A new, empty database on the real server, dropped after the test."""
    import asyncpg

    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(pg_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base, _, _ = pg_url.rpartition("/")
    yield f"{base}/{name}"
    admin = await asyncpg.connect(pg_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def topic_name() -> str:
    """A topic name no other test uses."""
    return f"test.{uuid.uuid4().hex[:12]}"
