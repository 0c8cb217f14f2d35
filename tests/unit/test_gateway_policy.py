"""The policy gate as pure code: deny by default, no inheritance of undecided tools, modes, buckets."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.gateway import config, policy
from services.gateway.config import RateLimit

TEXT = """
policy_id = "p"
[ledger]
url = "http://127.0.0.1:1"
token_file = "t"
[state]
database = "s.db"
[servers.fs]
command = ["x"]
rate_limit = "100/s"
[servers.fs.tools.read_file]
tier = "read"
[servers.fs.tools.write_file]
tier = "write"
rate_limit = "1/min"
[servers.fs.tools.move_file]
tier = "destructive"
[servers.fs.tools.untiered]
[servers.crm]
url = "http://127.0.0.1:2/mcp"
tier_default = "read"
[servers.crm.tools.lookup]
[servers.crm.tools.purge]
mode = "deny"
[agents.a]
allow = ["fs/*", "crm/lookup", "crm/purge"]
modes = { "fs/write_file" = "observe" }
rate_limit = "5/s"
[agents.b]
allow = ["crm/*"]
[[subjects.rules]]
argument = "email"
kind = "user"
tools = ["crm/*"]
"""


@pytest.fixture
def cfg(tmp_path: Path) -> config.GatewayConfig:
    (tmp_path / "g.toml").write_text(TEXT)
    return config.load(tmp_path / "g.toml")


def test_deny_by_default(cfg: config.GatewayConfig) -> None:
    """Unknown agents, servers and tools off the allow-list are refused, each with its reason."""
    assert policy.decide(cfg, "nobody", "fs", "read_file").reason == "unknown_agent"
    assert policy.decide(cfg, "a", "nowhere", "x").reason == "unknown_server"
    assert policy.decide(cfg, "b", "fs", "read_file").reason == "not_allowed"
    assert not policy.visible(cfg, "b", "fs", "read_file")


def test_a_star_does_not_inherit_undecided_tools(cfg: config.GatewayConfig) -> None:
    """``fs/*`` covers declared tools with a tier; a new upstream tool and a declared tool without a
    tier (and no tier_default) are undecided and denied."""
    assert policy.decide(cfg, "a", "fs", "read_file").decision == "allow"
    assert policy.decide(cfg, "a", "fs", "brand_new").reason == "undecided_tool"
    assert policy.decide(cfg, "a", "fs", "untiered").reason == "undecided_tool"
    assert policy.decide(cfg, "b", "crm", "new_tool").reason == "undecided_tool"
    assert policy.decide(cfg, "b", "crm", "lookup").tier == "read"  # tier_default of a declared tool


def test_modes_and_defaults(cfg: config.GatewayConfig) -> None:
    """Agent overrides win over the tool's mode; destructive tools default to step_up."""
    assert policy.decide(cfg, "a", "fs", "write_file").decision == "observe"
    assert policy.decide(cfg, "a", "fs", "move_file").decision == "step_up"
    assert policy.decide(cfg, "a", "crm", "purge").reason == "mode_deny"


def test_limits_in_order(cfg: config.GatewayConfig) -> None:
    v = policy.decide(cfg, "a", "fs", "write_file")
    assert [(lim.scope, lim.bucket) for lim in v.limits] == [
        ("server", "server:fs"), ("tool", "tool:fs/write_file"), ("agent", "agent:a")]


def test_token_bucket_math() -> None:
    """Starts full, refills evenly, says when to retry."""
    rate = RateLimit(2, 10.0, "2/10s")
    ok, left, _ = policy.take(2.0, 0.0, 0.0, rate)
    assert ok and left == 1.0
    ok, left, retry = policy.take(0.0, 0.0, 1.0, rate)
    assert not ok and left == pytest.approx(0.2) and retry == pytest.approx(4.0)
    assert policy.take(0.0, 0.0, 100.0, rate)[0]


def test_policy_version_follows_the_policy(cfg: config.GatewayConfig, tmp_path: Path) -> None:
    """The version changes with the policy, not with where the ledger or state live."""
    (tmp_path / "h.toml").write_text(TEXT.replace("http://127.0.0.1:1", "http://127.0.0.1:9"))
    assert policy.policy_version(config.load(tmp_path / "h.toml")) == policy.policy_version(cfg)
    (tmp_path / "i.toml").write_text(TEXT.replace('"observe"', '"step_up"'))
    assert policy.policy_version(config.load(tmp_path / "i.toml")) != policy.policy_version(cfg)


def test_subjects_from_arguments(cfg: config.GatewayConfig) -> None:
    assert policy.subjects_of(cfg, "crm", "lookup", {"email": "al@example.com"}) == ["user:al@example.com"]
    assert policy.subjects_of(cfg, "fs", "read_file", {"email": "al@example.com"}) == []
    assert policy.subjects_of(cfg, "crm", "lookup", {"email": {"x": 1}}) == []
    assert policy.split_name("crm__lookup") == ("crm", "lookup") and policy.split_name("nope") is None
