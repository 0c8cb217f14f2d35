"""The query side's SQLite adapters pass every query contract."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.contract.query_read_contract import (
    AnalyticsReaderContract,
    InvestigationReaderContract,
    ProjectorStoreContract,
)
from tests.contract.query_subjects_contract import ErasureStoreContract, RetentionStoreContract
from tests.support.query_backends import QueryBackend, sqlite_query_backend


@pytest.fixture
async def opened(tmp_path: Path) -> AsyncIterator[QueryBackend]:
    async with sqlite_query_backend(tmp_path / "query.db") as b:
        yield b


class TestSqliteProjectorStore(ProjectorStoreContract):
    @pytest.fixture
    def backend(self, opened: QueryBackend) -> QueryBackend:
        return opened


class TestSqliteAnalyticsReader(AnalyticsReaderContract):
    @pytest.fixture
    def backend(self, opened: QueryBackend) -> QueryBackend:
        return opened


class TestSqliteInvestigationReader(InvestigationReaderContract):
    @pytest.fixture
    def backend(self, opened: QueryBackend) -> QueryBackend:
        return opened


class TestSqliteErasureStore(ErasureStoreContract):
    @pytest.fixture
    def backend(self, opened: QueryBackend) -> QueryBackend:
        return opened


class TestSqliteRetentionStore(RetentionStoreContract):
    @pytest.fixture
    def backend(self, opened: QueryBackend) -> QueryBackend:
        return opened
