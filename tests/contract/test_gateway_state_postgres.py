"""The gateway credential, health and status contract on a real PostgreSQL (started by the test run)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.gateway.postgres import PostgresGatewayStore
from tests.contract.gateway_state_contract import GatewayStateContract


class TestPostgresGatewayState(GatewayStateContract):
    @pytest.fixture
    async def store(self, fresh_db_url: str) -> AsyncIterator[PostgresGatewayStore]:
        s = await PostgresGatewayStore.open(fresh_db_url)
        yield s
        await s.close()
