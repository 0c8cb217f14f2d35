"""The PostgreSQL ledger store passes the ledger-store contract."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.contract.ledger_store_contract import LedgerStoreContract
from tests.support.backends import LedgerBackend, postgres_backend


class TestPostgresLedgerStore(LedgerStoreContract):
    @pytest.fixture
    async def backend(self, fresh_db_url: str) -> AsyncIterator[LedgerBackend]:
        async with postgres_backend(fresh_db_url) as b:
            yield b
