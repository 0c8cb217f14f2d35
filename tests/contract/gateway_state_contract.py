"""The contract of the gateway's credential, health and status ports, run against each adapter."""

from __future__ import annotations

import asyncio

from services.gateway.ports import GatewayStore, SealedCredential, StatusChange


def _cred(server: str = "docs", state: str = "pending") -> SealedCredential:
    return SealedCredential(server, 0, "bearer", "Authorization", state, "k" * 16, "a" * 32,  # type: ignore[arg-type]
                            b"\x01wrapped", b"\x02sealed", 100.0)


class GatewayStateContract:
    """Subclasses provide a fresh ``store`` fixture."""

    async def test_versions_are_numbered_per_server_even_under_races(self, store: GatewayStore) -> None:
        """Concurrent adds get distinct consecutive versions; another server counts from 1."""
        added = await asyncio.gather(*(store.add_credential(_cred()) for _ in range(5)))
        assert sorted(c.version for c in added) == [1, 2, 3, 4, 5]
        assert (await store.add_credential(_cred("other"))).version == 1
        got = await store.get_credential("docs", 3)
        assert got is not None and got.sealed == b"\x02sealed" and got.wrapped_key == b"\x01wrapped"
        assert [c.version for c in await store.list_credentials("docs")] == [1, 2, 3, 4, 5]
        assert len(await store.list_credentials()) == 6

    async def test_activation_retires_the_previous_version_and_erases_it(self, store: GatewayStore) -> None:
        """One current version at a time; the retired one keeps its metadata but no sealed bytes."""
        one = await store.add_credential(_cred(state="current"))
        assert (await store.current_credential("docs")) == one
        two = await store.add_credential(_cred())
        assert (await store.current_credential("docs")) == one  # a pending version changes nothing yet
        assert await store.activate_credential("docs", two.version, 200.0)
        current = await store.current_credential("docs")
        assert current is not None and current.version == 2 and current.activated_at == 200.0
        old = await store.get_credential("docs", 1)
        assert old is not None and old.state == "retired" and old.sealed == b"" and old.retired_at == 200.0
        assert not await store.activate_credential("docs", 1, 300.0)  # a retired value cannot come back
        assert not await store.activate_credential("docs", 9, 300.0)

    async def test_a_failed_candidate_is_erased_and_the_current_one_stays(self, store: GatewayStore) -> None:
        await store.add_credential(_cred(state="current"))
        two = await store.add_credential(_cred())
        assert await store.fail_credential("docs", two.version, 150.0)
        assert not await store.fail_credential("docs", two.version, 160.0)
        failed = await store.get_credential("docs", 2)
        assert failed is not None and failed.state == "failed" and failed.sealed == b""
        assert (await store.current_credential("docs")).version == 1  # type: ignore[union-attr]
        await store.note_credential_check("docs", 1, 170.0, "ok")
        checked = await store.get_credential("docs", 1)
        assert checked is not None and (checked.checked_at, checked.check_status) == (170.0, "ok")

    async def test_failures_count_up_to_unhealthy_and_one_pass_recovers(self, store: GatewayStore) -> None:
        """Two failures of three allowed stay healthy, the third is unhealthy, a pass resets."""
        states = []
        for i in range(3):
            h = await store.record_health("docs", ok=False, status="unreachable", at=10.0 + i, latency_ms=None,
                                          tools=None, unhealthy_after=3)
            states.append((h.state, h.failures))
        assert states == [("healthy", 1), ("healthy", 2), ("unhealthy", 3)]
        assert (await store.get_health("docs")).state == "unhealthy"  # type: ignore[union-attr]
        h = await store.record_health("docs", ok=True, status="ok", at=20.0, latency_ms=12, tools=4,
                                      unhealthy_after=3)
        assert (h.state, h.failures, h.latency_ms, h.tools) == ("healthy", 0, 12, 4)
        assert await store.get_health("docs") == h
        assert [x.server for x in await store.list_health()] == ["docs"]
        assert await store.get_health("nothing") is None

    async def test_concurrent_failures_all_count(self, store: GatewayStore) -> None:
        await asyncio.gather(*(store.record_health("s", ok=False, status="timeout", at=1.0, latency_ms=None,
                                                   tools=None, unhealthy_after=10) for _ in range(6)))
        assert (await store.get_health("s")).failures == 6  # type: ignore[union-attr]

    async def test_status_changes_are_kept_and_only_real_changes_count(self, store: GatewayStore) -> None:
        """Enabling an active server is no change; disable then enable leaves two history rows."""
        assert await store.server_state("docs") is None
        assert not await store.set_server_state(StatusChange("docs", "active", "already", "op", 1.0))
        off = StatusChange("docs", "inactive", "maintenance window", "carol", 2.0)
        assert await store.set_server_state(off)
        assert not await store.set_server_state(StatusChange("docs", "inactive", "again", "carol", 3.0))
        assert await store.server_state("docs") == off
        assert await store.inactive_servers() == {"docs": off}
        on = StatusChange("docs", "active", "done", "dave", 4.0)
        assert await store.set_server_state(on)
        assert await store.inactive_servers() == {}
        assert await store.status_history("docs") == [off, on]
        assert await store.status_history("other") == []

    async def test_racing_disables_record_one_change(self, store: GatewayStore) -> None:
        wins = await asyncio.gather(*(store.set_server_state(StatusChange("x", "inactive", "r", f"op{i}", 5.0))
                                      for i in range(4)))
        assert wins.count(True) == 1
        assert len(await store.status_history("x")) == 1



