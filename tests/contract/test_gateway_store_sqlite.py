"""The gateway state store contract on SQLite, and two connections to one file sharing buckets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.gateway.config import RateLimit
from services.gateway.sqlite import SqliteGatewayStore
from tests.contract.gateway_store_contract import GatewayStoreContract


class TestSqliteGatewayStore(GatewayStoreContract):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[SqliteGatewayStore]:
        s = SqliteGatewayStore(tmp_path / "state.db")
        yield s
        await s.close()


async def test_two_connections_share_one_bucket(tmp_path: Path) -> None:
    """Two stores on one file (as two gateway processes) draw from the same bucket."""
    a, b = SqliteGatewayStore(tmp_path / "s.db"), SqliteGatewayStore(tmp_path / "s.db")
    try:
        rate = RateLimit(3, 60.0, "3/min")
        draws = [await (a if i % 2 else b).take("tool:x", rate, 10.0) for i in range(6)]
        assert [ok for ok, _ in draws] == [True, True, True, False, False, False]
    finally:
        await a.close()
        await b.close()
