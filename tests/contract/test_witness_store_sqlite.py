"""The SQLite witness store passes the witness-store contract."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.witness.ports import WitnessStore
from services.witness.sqlite import SqliteWitnessStore
from tests.contract.witness_store_contract import WitnessStoreContract


class TestSqliteWitnessStore(WitnessStoreContract):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[WitnessStore]:
        store = await SqliteWitnessStore.open(tmp_path / "witness.db")
        try:
            yield store
        finally:
            await store.close()
