"""Contracts of the query side's read ports, run against every adapter (PostgreSQL and SQLite):
:class:`ProjectorStore`, :class:`AnalyticsReader` and :class:`InvestigationReader`.

Subclass a contract and override the ``backend`` fixture with a :class:`QueryBackend` over a
fresh, migrated database. Entries are written through the backend's ledger store.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import orjson
import pytest

from sealtrail.core.sealing import payload_digest_bytes, subject_ref
from services.projector.projector import Projector, rebuild_equals_incremental
from services.query.cursor import Position
from services.query.ports import CallFilter, Found, Grouping
from services.query.windows import Window
from tests.contract.query_seed import ALICE, Seeded, def_hash, seed
from tests.support.query_backends import T0, QueryBackend

WINDOW = Window(T0, T0 + timedelta(hours=2))


class _Seeded:
    @pytest.fixture
    def backend(self) -> QueryBackend:
        raise NotImplementedError("an adapter's test class overrides the backend fixture")

    @pytest.fixture
    async def seeded(self, backend: QueryBackend) -> Seeded:
        data = await seed(backend)
        await Projector(store=backend.projector, batch_entries=4).catch_up()
        return data


class ProjectorStoreContract(_Seeded):
    """What every :class:`~services.projector.ports.ProjectorStore` adapter guarantees."""

    async def test_progress_reaches_every_log_size(self, backend: QueryBackend, seeded: Seeded) -> None:
        """After catching up in batches of 4, every log's progress equals its committed size."""
        logs = {p.log_id: (p.tenant_id, p.size, p.next_idx) for p in await backend.projector.logs()}
        assert logs == {"acme": ("acme", 24, 24), "beta": ("beta", 1, 1)}

    async def test_rebuild_equals_incremental(self, backend: QueryBackend, seeded: Seeded) -> None:
        """Replaying every log from index 0 in one batch gives the read models incremental batches gave."""
        check = await rebuild_equals_incremental(backend.projector, batch_entries=1000)
        assert check.equal, check.differing
        assert check.positions == {"acme": 24, "beta": 1}

    async def test_until_stops_and_digest_tracks_content(self, backend: QueryBackend, seeded: Seeded) -> None:
        """A rebuild up to index 10 stops there and digests differently; catching up restores the digest."""
        store = backend.projector
        full = await store.digest()
        await store.reset()
        assert await Projector(store=store).catch_up(until={"acme": 10}) == 10
        assert {p.log_id: p.next_idx for p in await store.logs()} == {"acme": 10, "beta": 0}
        assert await store.digest() != full
        await Projector(store=store, batch_entries=7).catch_up()
        assert await store.digest() == full

    async def test_subject_index_lists_active_subject_keys(self, backend: QueryBackend, seeded: Seeded) -> None:
        """One subject-index row per entry sealed under an active subject key, and none for other keys."""
        assert await backend.raw.count("subject_index") == 5
        assert await backend.raw.count("subject_index", "tenant_id = 'beta'") == 1


class AnalyticsReaderContract(_Seeded):
    """What every :class:`~services.query.ports.AnalyticsReader` adapter guarantees."""

    async def test_call_totals_per_tool(self, backend: QueryBackend, seeded: Seeded) -> None:
        """Counters, costs and the merged histogram per tool; other tenants and windows left out."""
        totals = await backend.stores.analytics.call_totals("acme", Grouping.TOOL, WINDOW)
        assert set(totals) == {("srv-db", "db.query"), ("srv-web", "web.get")}
        db = totals[("srv-db", "db.query")]
        assert (db.calls, db.ok, db.errors, db.executed, db.denied, db.step_up) == (14, 10, 2, 12, 1, 1)
        assert (db.latency_n, db.latency_sum, sum(db.hist)) == (12, 4100, 12)
        assert db.costs == {"USD": 2500}
        assert totals[("srv-web", "web.get")].calls == 5

    async def test_daily_rollups_cover_whole_days(self, backend: QueryBackend, seeded: Seeded) -> None:
        """A window of whole days reads the daily rollups and includes the call two days earlier."""
        week = Window(T0.replace(hour=0) - timedelta(days=3), T0.replace(hour=0) + timedelta(days=1))
        agents = await backend.stores.analytics.call_totals("acme", Grouping.AGENT, week)
        assert {k: v.calls for k, v in agents.items()} == {("agent-1",): 15, ("agent-2",): 5}

    async def test_hours_rate_limits_first_uses(self, backend: QueryBackend, seeded: Seeded) -> None:
        """Hourly series per tool, rate-limit sums and maxima, and first uses in time order."""
        reader = backend.stores.analytics
        hours = await reader.tool_hours("acme", WINDOW)
        assert {h: t.calls for h, t in hours[("srv-db", "db.query")].items()} == {T0: 14}
        (rl,) = await reader.rate_limits("acme", WINDOW, 10)
        hour2 = T0 + timedelta(hours=1)
        assert (rl.limit_id, rl.events, rl.max_observed, rl.first_hour) == ("per-agent", 2, 150, hour2)
        uses = await reader.first_uses("acme", WINDOW, None, 10)
        assert [(u.agent_id, u.tool_name, u.index) for u in uses] == [("agent-1", "db.query", 1),
                                                                       ("agent-2", "web.get", 15)]
        assert [u.tool_name for u in await reader.first_uses("acme", WINDOW, "agent-2", 10)] == ["web.get"]

    async def test_definition_changes_and_stale_definitions(self, backend: QueryBackend, seeded: Seeded) -> None:
        """The changed definition is reported, the first discovery is not, and agent-1's use is stale."""
        reader = backend.stores.analytics
        (change,) = await reader.definition_changes("acme", WINDOW, 10)
        assert (change.tool_name, change.change, change.old_hash, change.new_hash, change.index) == (
            "db.query", "changed", def_hash("v1"), def_hash("v2"), 22)
        (stale,) = await reader.stale_definitions("acme", None, 10)
        assert (stale.agent_id, stale.used_hash, stale.current_hash) == ("agent-1", def_hash("v1"), def_hash("v2"))
        assert await reader.stale_definitions("acme", "agent-2", 10) == []

    async def test_tenant_isolation(self, backend: QueryBackend, seeded: Seeded) -> None:
        """beta sees only its own rollups; a tenant without data sees nothing."""
        reader = backend.stores.analytics
        beta = await reader.call_totals("beta", Grouping.SERVER, WINDOW)
        assert {k: v.calls for k, v in beta.items()} == {("srv-beta",): 1}
        assert await reader.call_totals("gamma", Grouping.TOOL, WINDOW) == {}
        assert await reader.rate_limits("beta", WINDOW, 10) == []
        assert await reader.definition_changes("beta", WINDOW, 10) == []


def _ids(found: list[Found]) -> list[str]:
    return [str(f.header["event_id"]) for f in found]


class InvestigationReaderContract(_Seeded):
    """What every :class:`~services.query.ports.InvestigationReader` adapter guarantees."""

    async def test_search_pages_newest_first(self, backend: QueryBackend, seeded: Seeded) -> None:
        """Keyset pages of 4 concatenate to the single-page answer, newest first, without repeats."""
        inv = backend.stores.investigations
        f = CallFilter({"type": "tool_call"})
        everything, more = await inv.search_calls("acme", f, None, 100)
        assert not more and len(everything) == 20
        assert [x.occurred_at for x in everything] == sorted((x.occurred_at for x in everything), reverse=True)
        pages: list[Found] = []
        after: Position | None = None
        while True:
            page, more = await inv.search_calls("acme", f, after, 4)
            pages += page
            if not more:
                break
            after = page[-1].position
        assert _ids(pages) == _ids(everything)

    async def test_search_filters_and_subject(self, backend: QueryBackend, seeded: Seeded) -> None:
        """Filters combine; the subject filter finds exactly the subject's calls through the index."""
        inv = backend.stores.investigations
        found, _ = await inv.search_calls("acme", CallFilter({"tool": "web.get", "agent": "agent-2"}), None, 100)
        assert len(found) == 5
        timed = CallFilter({}, T0 + timedelta(minutes=20), T0 + timedelta(minutes=22))
        statuses = [f.header["status"] for f in (await inv.search_calls("acme", timed, None, 10))[0]]
        assert statuses == ["timeout", "error"]
        ref = subject_ref(backend.index_keys["acme"], ALICE)
        found, _ = await inv.search_calls("acme", CallFilter({}, subject_ref=ref), None, 100)
        assert sorted(_ids(found)) == sorted(seeded.alice)
        assert (await inv.search_calls("beta", CallFilter({}, subject_ref=ref), None, 100))[0] == []

    async def test_sessions(self, backend: QueryBackend, seeded: Seeded) -> None:
        """A session's timeline is oldest first in keyset pages; its summary is the projector's row."""
        inv = backend.stores.investigations
        first, more = await inv.session_timeline("acme", "s-2", None, 3)
        rest, last = await inv.session_timeline("acme", "s-2", first[-1].position, 3)
        assert more and not last
        assert _ids(first + rest) == seeded.event_ids("acme")[15:20]
        summary = await inv.session_summary("acme", "s-2")
        assert summary is not None and (summary["agent_id"], summary["calls"]) == ("agent-2", 5)
        assert summary["first_at"] == (T0 + timedelta(minutes=70)).isoformat()
        assert (await inv.session_timeline("beta", "s-2", None, 10))[0] == []
        assert (await inv.session_summary("beta", "s-1") or {}).get("calls") == 1

    async def test_one_call_with_its_payload(self, backend: QueryBackend, seeded: Seeded) -> None:
        """A call is found by event id with the stored ciphertext; another tenant cannot find it."""
        inv = backend.stores.investigations
        record = seeded.records["acme"][2]
        event_id = uuid.UUID(str(record.header["event_id"]))
        call = await inv.call_by_event_id("acme", event_id, with_payload=True)
        assert call is not None and call.found.header["event_id"] == record.header["event_id"]
        assert call.found.header["key_ids"] == record.header["key_ids"]
        assert (call.nonce, call.ciphertext, call.key_ids) == (record.nonce, record.ciphertext,
                                                               tuple(record.header["key_ids"]))
        bare = await inv.call_by_event_id("acme", event_id, with_payload=False)
        assert bare is not None and bare.ciphertext is None
        assert await inv.call_by_event_id("beta", event_id, with_payload=True) is None

    async def test_subject_calls_digests_and_erasure_events(self, backend: QueryBackend, seeded: Seeded) -> None:
        """A subject's calls in log order (paged); payload digests by index; unknown logs are None."""
        inv = backend.stores.investigations
        ref = subject_ref(backend.index_keys["acme"], ALICE)
        page, more = await inv.subject_calls("acme", ref, None, 2)
        rest, _ = await inv.subject_calls("acme", ref, Position(None, page[-1].found.log_id, page[-1].found.idx), 2)
        assert more and [c.found.idx for c in page + rest] == [1, 2, 3]
        assert all(c.ciphertext is not None for c in page + rest)
        rows = await inv.entry_page("acme", "acme", 0, 5)
        assert rows is not None and [r[0] for r in rows] == [0, 1, 2, 3, 4]
        records = seeded.records["acme"][:5]
        assert [orjson.loads(r[1])["event_id"] for r in rows] == [x.event_id for x in records]
        assert all(len(r[2]) == 32 for r in rows)
        assert [r[3] for r in rows] == [payload_digest_bytes(x.nonce, x.ciphertext) for x in records]
        assert await inv.entry_page("acme", "acme", 5, 5) == []
        assert await inv.entry_page("beta", "acme", 0, 5) is None
        assert await inv.entry_page("acme", "no-such-log", 0, 5) is None
        assert await inv.erasure_events("acme", "acme") == []
        assert await inv.erasure_events("beta", "acme") is None

    async def test_entry_page_digests_what_is_stored_now(self, backend: QueryBackend, seeded: Seeded) -> None:
        """A payload altered in place gets the digest of its altered bytes; a deleted one none; the
        rows around them keep theirs."""
        inv = backend.stores.investigations
        before = await inv.entry_page("acme", "acme", 0, 5)
        assert await backend.raw.tamper("UPDATE payloads SET ciphertext = nonce WHERE log_id = 'acme' AND idx = 2") == 1
        assert await backend.raw.tamper("DELETE FROM payloads WHERE log_id = 'acme' AND idx = 3") == 1
        after = await inv.entry_page("acme", "acme", 0, 5)
        assert before is not None and after is not None
        nonce = seeded.records["acme"][2].nonce
        assert after[2][3] == payload_digest_bytes(nonce, nonce) != before[2][3]
        assert after[3][3] is None and after[3][:3] == before[3][:3]
        assert [after[i] for i in (0, 1, 4)] == [before[i] for i in (0, 1, 4)]
