"""The gateway state store contract on a real PostgreSQL (started by the test run)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.gateway.postgres import PostgresGatewayStore
from tests.contract.gateway_store_contract import GatewayStoreContract


class TestPostgresGatewayStore(GatewayStoreContract):
    @pytest.fixture
    async def store(self, fresh_db_url: str) -> AsyncIterator[PostgresGatewayStore]:
        s = await PostgresGatewayStore.open(fresh_db_url)
        yield s
        await s.close()


async def test_migrations_run_once_from_two_processes(fresh_db_url: str) -> None:
    """Opening the store twice (as two gateways starting together) migrates once and both work."""
    a = await PostgresGatewayStore.open(fresh_db_url)
    b = await PostgresGatewayStore.open(fresh_db_url)
    try:
        await a.ping()
        await b.ping()
    finally:
        await a.close()
        await b.close()
