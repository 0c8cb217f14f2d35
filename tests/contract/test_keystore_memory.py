"""The in-memory key store passes the key-store contract."""

from __future__ import annotations

import pytest

from sealtrail.core.keystore import KeyStore, MemoryKeyStore
from tests.contract.keystore_contract import KeyStoreContract


class TestMemoryKeyStore(KeyStoreContract):
    @pytest.fixture
    def store(self) -> KeyStore:
        return MemoryKeyStore()
