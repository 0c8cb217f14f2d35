"""The gateway credential, health and status contract on SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.gateway.sqlite import SqliteGatewayStore
from tests.contract.gateway_state_contract import GatewayStateContract


class TestSqliteGatewayState(GatewayStateContract):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[SqliteGatewayStore]:
        s = SqliteGatewayStore(tmp_path / "state.db")
        yield s
        await s.close()
