"""The SQLite ledger store passes the ledger-store contract."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.contract.ledger_store_contract import LedgerStoreContract
from tests.support.backends import LedgerBackend, sqlite_backend


class TestSqliteLedgerStore(LedgerStoreContract):
    @pytest.fixture
    async def backend(self, tmp_path: Path) -> AsyncIterator[LedgerBackend]:
        async with sqlite_backend(tmp_path / "ledger.db") as b:
            yield b
