"""The PostgreSQL auth store passes the auth-store contract."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from sealtrail.infra.auth import AuthStore
from sealtrail.infra.auth_postgres import PostgresAuthStore
from sealtrail.infra.postgres import migrate_url
from tests.contract.auth_contract import AuthStoreContract


class TestPostgresAuthStore(AuthStoreContract):
    @pytest.fixture
    async def auth(self, fresh_db_url: str) -> AsyncIterator[AuthStore]:
        await migrate_url(fresh_db_url)
        pool = await asyncpg.create_pool(fresh_db_url, min_size=1, max_size=4)
        assert pool is not None
        try:
            yield PostgresAuthStore(pool=pool)
        finally:
            await pool.close()
