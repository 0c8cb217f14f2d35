"""The PostgreSQL witness store passes the witness-store contract."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.witness.ports import WitnessStore
from services.witness.postgres import PostgresWitnessStore
from tests.contract.witness_store_contract import WitnessStoreContract


class TestPostgresWitnessStore(WitnessStoreContract):
    @pytest.fixture
    async def store(self, fresh_db_url: str) -> AsyncIterator[WitnessStore]:
        store = await PostgresWitnessStore.open(fresh_db_url)
        try:
            yield store
        finally:
            await store.close()
