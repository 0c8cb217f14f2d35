"""The SQLite ledger reader and checkpoint store pass their contracts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.contract.checkpoint_store_contract import CheckpointStoreContract
from tests.contract.ledger_reader_contract import LedgerReaderContract
from tests.support.backends import LedgerBackend, sqlite_backend


@pytest.fixture
async def opened(tmp_path: Path) -> AsyncIterator[LedgerBackend]:
    async with sqlite_backend(tmp_path / "ledger.db") as b:
        yield b


class TestSqliteLedgerReader(LedgerReaderContract):
    @pytest.fixture
    def backend(self, opened: LedgerBackend) -> LedgerBackend:
        return opened


class TestSqliteCheckpointStore(CheckpointStoreContract):
    @pytest.fixture
    def backend(self, opened: LedgerBackend) -> LedgerBackend:
        return opened
