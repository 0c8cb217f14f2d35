"""The tool-pin contract of :class:`services.gateway.ports.PinStore`, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from services.gateway.pinning import Listed
from services.gateway.ports import GatewayStore, PinStateError
from services.gateway.postgres import PostgresGatewayStore
from services.gateway.sqlite import SqliteGatewayStore

EVENT_A, EVENT_B = "01a25166-5f25-7a65-a124-fee07687ab8a", "01a25166-5f25-7a65-a124-fee07687ab8b"


def _tool(name: str, description: str = "d", **extra: Any) -> Listed:
    return Listed.of({"name": name, "description": description, "inputSchema": {"type": "object"}, **extra})


class PinStoreContract:
    """Subclasses provide a fresh ``store`` fixture."""

    async def test_registration_pins_every_tool_as_approved(self, store: GatewayStore) -> None:
        """A server's first listing adds every tool, approved as listed, under the given event."""
        changes = await store.sync_pins("demo", [_tool("b"), _tool("a")], at=10.0, event_id=EVENT_A)
        assert [(c.tool, c.change, c.old_hash) for c in changes] == [("a", "added", None), ("b", "added", None)]
        pins = await store.list_pins("demo")
        assert [p.tool for p in pins] == ["a", "b"]
        assert all(p.listed and not p.changed and p.change_event == EVENT_A and p.first_seen == 10.0 for p in pins)
        assert pins[0].definition.startswith('{"description":"d"')  # canonical JSON as stored
        assert await store.list_pins("other") == [] and len(await store.list_pins()) == 2


    async def test_a_same_listing_changes_nothing(self, store: GatewayStore) -> None:
        """Listing the same definitions again returns no change and keeps the pins as they were."""
        await store.sync_pins("demo", [_tool("a")], at=10.0, event_id=EVENT_A)
        before = await store.list_pins()
        assert await store.sync_pins("demo", [_tool("a")], at=20.0, event_id=EVENT_B) == []
        assert await store.list_pins() == before


    async def test_changes_removals_and_approval(self, store: GatewayStore) -> None:
        """A redefined tool is changed (old and new hash) until approved; a removed tool keeps its pin
        unlisted; a tool listed again is added back and compared with its approved definition."""
        a1, b1 = _tool("a"), _tool("b")
        await store.sync_pins("demo", [a1, b1], at=10.0, event_id=EVENT_A)
        a2 = _tool("a", "now it deletes things")
        changes = await store.sync_pins("demo", [a2], at=20.0, event_id=EVENT_B)
        assert [(c.tool, c.change, c.old_hash, c.new_hash) for c in changes] == [
            ("a", "changed", a1.def_hash, a2.def_hash), ("b", "removed", b1.def_hash, None)]
        a, b = await store.list_pins("demo")
        assert a.changed and a.approved_hash == a1.def_hash and a.def_hash == a2.def_hash and a.change_event == EVENT_B
        assert not b.listed and b.def_hash == b1.def_hash
        done = await store.approve_pin("demo", "a", by="carol", at=30.0)
        assert not done.changed and done.approved_by == "carol" and done.approved_at == 30.0
        assert (await store.list_pins("demo"))[0] == done
        with pytest.raises(PinStateError):
            await store.approve_pin("demo", "a", by="carol", at=31.0)
        with pytest.raises(KeyError):
            await store.approve_pin("demo", "nope", by="carol", at=31.0)
        back = await store.sync_pins("demo", [a2, b1], at=40.0, event_id=EVENT_A)
        assert [(c.tool, c.change, c.old_hash) for c in back] == [("b", "added", b1.def_hash)]
        assert not (await store.list_pins("demo"))[1].changed


    async def test_concurrent_syncs_report_a_change_once(self, store: GatewayStore) -> None:
        """Several gateways pinning the same new listing at once: exactly one gets the change."""
        await store.sync_pins("demo", [_tool("a")], at=10.0, event_id=EVENT_A)
        new = [_tool("a", "redefined"), _tool("c")]
        results = await asyncio.gather(*(store.sync_pins("demo", new, at=20.0, event_id=EVENT_B) for _ in range(6)))
        assert sorted(len(r) for r in results) == [0, 0, 0, 0, 0, 2]


class TestSqlitePins(PinStoreContract):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[SqliteGatewayStore]:
        s = SqliteGatewayStore(tmp_path / "state.db")
        yield s
        await s.close()


class TestPostgresPins(PinStoreContract):
    @pytest.fixture
    async def store(self, fresh_db_url: str) -> AsyncIterator[PostgresGatewayStore]:
        s = await PostgresGatewayStore.open(fresh_db_url)
        yield s
        await s.close()
