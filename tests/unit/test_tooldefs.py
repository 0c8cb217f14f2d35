"""Diffing tool-list snapshots: added, removed and changed definitions, independent of batching."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.projector.rollups import ToolSnapshot
from services.projector.tooldefs import apply_snapshots

T0 = datetime(2025, 3, 3, tzinfo=UTC)


def snap(idx: int, **tools: str) -> ToolSnapshot:
    return ToolSnapshot("acme", idx, T0 + timedelta(hours=idx), "srv", tuple(tools.items()))


def test_first_snapshot_adds_and_later_ones_diff() -> None:
    """A first snapshot adds every tool; then a new hash is 'changed', a missing name 'removed', and
    an identical snapshot changes nothing (the current definition keeps its original 'since')."""
    result = apply_snapshots({}, [snap(0, a="h1", b="h1"), snap(1, a="h1", b="h1"), snap(2, a="h2", c="h1")])
    assert [(c.idx, c.tool_name, c.change, c.old_hash, c.new_hash) for c in result.changes] == [
        (0, "a", "added", None, "h1"), (0, "b", "added", None, "h1"),
        (2, "a", "changed", "h1", "h2"), (2, "c", "added", None, "h1"), (2, "b", "removed", "h1", None)]
    state = result.servers["srv"]
    assert {n: (t.def_hash, t.since_idx) for n, t in state.items()} == {"a": ("h2", 2), "c": ("h1", 2)}
    seen = result.seen[("srv", "b", "h1")]
    assert (seen.first_idx, seen.last_idx, seen.snapshots) == (0, 1, 2)


def test_splitting_snapshots_over_batches_changes_nothing() -> None:
    """Applying snapshots in two batches (state carried over) yields the same changes and state."""
    snaps = [snap(0, a="h1"), snap(1, a="h2", b="h1"), snap(2, b="h1"), snap(3, a="h3", b="h2")]
    whole = apply_snapshots({}, snaps)
    first = apply_snapshots({}, snaps[:2])
    second = apply_snapshots(first.servers, snaps[2:])
    assert first.changes + second.changes == whole.changes
    assert second.servers == whole.servers


def test_input_state_is_not_modified() -> None:
    """The caller's current state is left as it was."""
    current = apply_snapshots({}, [snap(0, a="h1")]).servers
    before = {k: dict(v) for k, v in current.items()}
    apply_snapshots(current, [snap(1, b="h1")])
    assert current == before
