"""The SQLite auth store passes the auth-store contract."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sealtrail.infra.auth import AuthStore
from sealtrail.infra.auth_sqlite import SqliteAuthStore
from sealtrail.infra.sqlite import open_database
from tests.contract.auth_contract import AuthStoreContract


class TestSqliteAuthStore(AuthStoreContract):
    @pytest.fixture
    async def auth(self, tmp_path: Path) -> AsyncIterator[AuthStore]:
        db = await open_database(tmp_path / "auth.db")
        try:
            yield SqliteAuthStore(db=db)
        finally:
            await db.close()
