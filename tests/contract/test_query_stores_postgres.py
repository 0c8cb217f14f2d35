"""The query side's PostgreSQL adapters pass every query contract."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.contract.query_read_contract import (
    AnalyticsReaderContract,
    InvestigationReaderContract,
    ProjectorStoreContract,
)
from tests.contract.query_subjects_contract import ErasureStoreContract, RetentionStoreContract
from tests.support.query_backends import QueryBackend, postgres_query_backend


@pytest.fixture
async def opened(fresh_db_url: str) -> AsyncIterator[QueryBackend]:
    async with postgres_query_backend(fresh_db_url) as b:
        yield b


class TestPostgresProjectorStore(ProjectorStoreContract):
    @pytest.fixture
    def backend(self, opened: QueryBackend) -> QueryBackend:
        return opened


class TestPostgresAnalyticsReader(AnalyticsReaderContract):
    @pytest.fixture
    def backend(self, opened: QueryBackend) -> QueryBackend:
        return opened


class TestPostgresInvestigationReader(InvestigationReaderContract):
    @pytest.fixture
    def backend(self, opened: QueryBackend) -> QueryBackend:
        return opened


class TestPostgresErasureStore(ErasureStoreContract):
    @pytest.fixture
    def backend(self, opened: QueryBackend) -> QueryBackend:
        return opened


class TestPostgresRetentionStore(RetentionStoreContract):
    @pytest.fixture
    def backend(self, opened: QueryBackend) -> QueryBackend:
        return opened
