"""Tool pinning as pure code: definition hashes, diffs of listings, enforcement, tier hints, review."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import rfc8785

from services.gateway import config, pinning
from services.gateway.pinning import Listed, Pin, reconcile, refusal, suggest_tier
from services.gateway.toolreview import review

TOOL: dict[str, Any] = {
    "name": "update_note", "title": "Update a note", "description": "Store a note.",
    "inputSchema": {"type": "object", "properties": {"key": {"type": "string"}, "text": {"type": "string"}}},
    "outputSchema": {"type": "object"}, "annotations": {"destructiveHint": False}, "_meta": {"x": 1.5},
}
E1, E2 = "01a25166-5f25-7a65-a124-fee07687ab8a", "01a25166-5f25-7a65-a124-fee07687ab8b"


def _pins(tools: list[dict[str, Any]], at: float = 1.0) -> list[Pin]:
    return reconcile("s", [], [Listed.of(t) for t in tools], at=at, event_id=E1)[1]


def test_the_hash_covers_the_whole_definition_as_rfc_8785_json() -> None:
    """def_hash is sha256: + hex SHA-256 of the reference RFC 8785 bytes of the whole tool object, so
    key order does not matter and every field (title, output schema, annotations, _meta) counts."""
    assert pinning.def_hash(TOOL) == "sha256:" + hashlib.sha256(rfc8785.dumps(TOOL)).hexdigest()
    assert pinning.def_hash(dict(reversed(list(TOOL.items())))) == pinning.def_hash(TOOL)
    for key, value in [("title", "Update"), ("outputSchema", {"type": "string"}), ("_meta", {"x": 2}),
                       ("annotations", {"destructiveHint": True}), ("description", "Store a note!")]:
        assert pinning.def_hash({**TOOL, key: value}) != pinning.def_hash(TOOL), key
    listed = Listed.of(TOOL)
    assert listed.def_hash == pinning.def_hash(TOOL) and listed.definition.encode() == rfc8785.dumps(TOOL)


@pytest.mark.parametrize("change", [
    {"description": "Store a note and mail it to everyone."},
    {"inputSchema": {"type": "object", "properties": {"key": {"type": "string"}}}},
    {"annotations": {"destructiveHint": True}},
])
def test_a_redefined_tool_is_changed_with_old_and_new_hash(change: dict[str, Any]) -> None:
    """A new description, input schema or annotation each make the tool changed, not yet approved."""
    pins = _pins([TOOL])
    new = Listed.of({**TOOL, **change})
    changes, writes = reconcile("s", pins, [new], at=2.0, event_id=E2)
    assert [c.public() for c in changes] == [{"tool": "update_note", "change": "changed",
                                             "old_hash": pins[0].def_hash, "new_hash": new.def_hash}]
    (pin,) = writes
    assert pin.changed and pin.approved_hash == pins[0].def_hash and pin.change_event == E2 and pin.first_seen == 1.0


def test_added_removed_and_renamed() -> None:
    """A new tool is added; a missing one removed (kept unlisted); a renamed one is both."""
    a, b = {**TOOL, "name": "a"}, {**TOOL, "name": "b"}
    pins = _pins([a, b])
    renamed = {**TOOL, "name": "b2"}
    changes, writes = reconcile("s", pins, [Listed.of(a), Listed.of(renamed)], at=2.0, event_id=E2)
    assert [(c.tool, c.change) for c in changes] == [("b2", "added"), ("b", "removed")]
    assert {p.tool: p.listed for p in writes} == {"b2": True, "b": False}
    assert reconcile("s", pins, [Listed.of(a), Listed.of(b)], at=3.0, event_id=E2) == ([], [])


def test_enforcement_by_policy() -> None:
    """Unlisted and removed tools are refused; a changed one is refused under block and passes under flag;
    the default is block for write and destructive, flag for read."""
    (pin,) = _pins([TOOL])
    changed = reconcile("s", [pin], [Listed.of({**TOOL, "description": "x"})], at=2.0, event_id=E2)[1][0]
    gone = reconcile("s", [pin], [], at=2.0, event_id=E2)[1][0]
    assert refusal(None, "flag") == "unlisted_tool" and refusal(gone, "flag") == "removed_tool"
    assert refusal(pin, "block") is None and refusal(changed, "flag") is None
    assert refusal(changed, "block") == "definition_changed"
    assert refusal(pinning.approved(changed, by="carol", at=3.0), "block") is None
    assert [pinning.on_change(None, t) for t in config.TIERS] == ["flag", "block", "block"]
    assert pinning.on_change("flag", "destructive") == "flag"


@pytest.mark.parametrize(("notes", "tier"), [
    ({"readOnlyHint": True, "destructiveHint": True}, "read"), ({"destructiveHint": False}, "write"),
    ({"readOnlyHint": False}, "destructive"), ({"destructiveHint": True, "idempotentHint": True}, "destructive"),
    ({"idempotentHint": True}, None), ("not an object", None),
])
def test_tier_suggestions_from_annotations(notes: Any, tier: str | None) -> None:
    """MCP hint annotations suggest a tier; no hint, no suggestion."""
    assert suggest_tier({"name": "t", "annotations": notes}) == tier
    assert suggest_tier({"name": "t"}) is None


def _cfg(tmp_path: Path, extra: str = "") -> config.GatewayConfig:
    text = f"""
policy_id = "p"
[ledger]
url = "http://127.0.0.1:1"
token_file = "t"
[state]
database = "s.db"
[servers.s]
command = ["x"]
tier_default = "read"
on_change = "block"
[servers.s.tools.a]
[servers.s.tools.b]
tier = "write"
on_change = "flag"
[servers.s.tools.d]
[agents.bot]
allow = ["s/a", "s/b"]
{extra}"""
    (tmp_path / "g.toml").write_text(text)
    return config.load(tmp_path / "g.toml")


def test_review_shows_what_waits_for_a_decision(tmp_path: Path) -> None:
    """pending lists a tool with no tier (c), one no agent may call (d) and a changed one, with its
    policy and the annotations' suggestion; list adds the pinned and removed ones."""
    cfg = _cfg(tmp_path)
    tools = [{"name": n, "annotations": {"readOnlyHint": True}} for n in "abcd"]
    first = _pins(tools)
    fresh = [Listed.of({"name": "a", "description": "new"}), Listed.of({"name": "b", "description": "new"}),
             Listed.of(tools[2]), Listed.of(tools[3])]
    pins = {p.tool: p for p in first}
    pins.update({p.tool: p for p in reconcile("s", first, fresh, at=2, event_id=E2)[1]})
    shown = {t["tool"]: t for t in review(cfg, list(pins.values()))}
    assert set(shown) == {"a", "b", "c", "d"}
    assert (shown["a"]["state"], shown["a"]["on_change"], shown["a"]["blocked"]) == ("changed", "block", True)
    assert (shown["b"]["on_change"], shown["b"]["blocked"]) == ("flag", False)
    assert (shown["c"]["state"], shown["c"]["missing"]) == ("new", ["tier", "allow"])
    assert (shown["d"]["missing"], shown["d"]["suggested_tier"], shown["d"]["hints"]) == (
        ["allow"], "read", {"readOnlyHint": True})
    gone = reconcile("s", [pins["c"]], [], at=3, event_id=E1)[1]
    assert [t["state"] for t in review(cfg, gone, everything=True)] == ["removed"]
    assert review(cfg, gone) == []


def test_on_change_is_checked_in_the_configuration(tmp_path: Path) -> None:
    """A bad on_change value is refused with the key named."""
    with pytest.raises(config.GatewayConfigError, match=r"servers\.s\.tools\.x\.on_change: expected one of"):
        _cfg(tmp_path, '[servers.s.tools.x]\non_change = "warn"\n')


def test_on_change_is_part_of_the_policy_version(tmp_path: Path) -> None:
    """Changing a server's or a tool's on_change changes the recorded policy version."""
    from services.gateway.policy import policy_version

    base = policy_version(_cfg(tmp_path))
    (tmp_path / "g.toml").write_text((tmp_path / "g.toml").read_text().replace('on_change = "block"', ""))
    server_level = policy_version(config.load(tmp_path / "g.toml"))
    (tmp_path / "g.toml").write_text((tmp_path / "g.toml").read_text().replace('on_change = "flag"', ""))
    assert len({base, server_level, policy_version(config.load(tmp_path / "g.toml"))}) == 3


async def test_discovery_records_each_change_once(tmp_path: Path) -> None:
    """Discovery over a SQLite state file: registration is one tool_list snapshot (no agent) with every
    tool added; the same listing again records nothing; a redefinition is one snapshot whose sealed
    payload has the old and new hash; two gateways on one file record a change once; pins are read
    back through the cache."""
    from services.gateway.discovery import Discovery
    from services.gateway.sqlite import SqliteGatewayStore

    events: list[dict[str, Any]] = []

    async def record(event: dict[str, Any]) -> None:
        events.append(event)

    a, b = SqliteGatewayStore(tmp_path / "s.db"), SqliteGatewayStore(tmp_path / "s.db")
    try:
        one, two = Discovery(a, record), Discovery(b, record)
        listing = [TOOL, {"name": "echo", "inputSchema": {"type": "object"}}]
        assert [c.change for c in await one.listed("s", listing)] == ["added", "added"]
        assert await one.listed("s", listing) == [] and await two.listed("s", [dict(t) for t in listing]) == []
        assert len(events) == 1 and "agent_id" not in events[0] and events[0]["type"] == "tool_list"
        assert {t["name"]: t["def_hash"] for t in events[0]["tools"]} == {
            "update_note": pinning.def_hash(TOOL), "echo": pinning.def_hash(listing[1])}
        redefined = [{**TOOL, "description": "Store a note and share it."}, listing[1]]
        changes = await one.listed("s", redefined) + await two.listed("s", list(redefined))
        assert [(c.tool, c.change) for c in changes] == [("update_note", "changed")] and len(events) == 2
        assert events[1]["payload"] == {"changes": [{"tool": "update_note", "change": "changed",
                                                     "old_hash": pinning.def_hash(TOOL),
                                                     "new_hash": pinning.def_hash(redefined[0])}]}
        pin = await two.pin("s", "update_note")
        assert pin is not None and pin.changed and two.cached("s", "update_note") == pin
        assert await two.pin("s", "nope") is None
    finally:
        await a.close()
        await b.close()
