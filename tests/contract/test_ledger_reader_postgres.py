"""The PostgreSQL ledger reader and checkpoint store pass their contracts."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.contract.checkpoint_store_contract import CheckpointStoreContract
from tests.contract.ledger_reader_contract import LedgerReaderContract
from tests.support.backends import LedgerBackend, postgres_backend


@pytest.fixture
async def opened(fresh_db_url: str) -> AsyncIterator[LedgerBackend]:
    async with postgres_backend(fresh_db_url) as b:
        yield b


class TestPostgresLedgerReader(LedgerReaderContract):
    @pytest.fixture
    def backend(self, opened: LedgerBackend) -> LedgerBackend:
        return opened


class TestPostgresCheckpointStore(CheckpointStoreContract):
    @pytest.fixture
    def backend(self, opened: LedgerBackend) -> LedgerBackend:
        return opened
