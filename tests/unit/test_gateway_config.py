"""The gateway configuration: the documented example loads, and each bad key is named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.gateway import config
from services.gateway.config import GatewayConfigError

ROOT = Path(__file__).resolve().parents[2]
GOOD = """
policy_id = "p1"
[ledger]
url = "http://127.0.0.1:8700"
token_file = "token"
[state]
database = "state.db"
[servers.fs]
command = ["npx", "server"]
tier_default = "read"
rate_limit = "10/s"
[servers.fs.tools.write_file]
tier = "destructive"
mode = "step_up"
cost_micros = 5
[agents.a]
allow = ["fs/*"]
modes = { "fs/write_file" = "deny" }
rate_limit = "100/min"
[[subjects.rules]]
argument = "customer.email"
kind = "user"
"""


def _load(tmp_path: Path, text: str) -> config.GatewayConfig:
    path = tmp_path / "g.toml"
    path.write_text(text)
    return config.load(path)


def test_a_good_file_loads_with_paths_beside_it(tmp_path: Path) -> None:
    """Relative paths are resolved beside the file; rates and modes are parsed."""
    cfg = _load(tmp_path, GOOD)
    assert cfg.ledger.token_file == tmp_path / "token" and cfg.state_database == str(tmp_path / "state.db")
    assert cfg.servers["fs"].rate_limit == config.RateLimit(10, 1.0, "10/s")
    assert cfg.servers["fs"].tools["write_file"].tier == "destructive"
    assert cfg.agents["a"].modes == {"fs/write_file": "deny"} and cfg.ledger.fail_closed == ("destructive",)


def test_the_documented_example_loads(tmp_path: Path) -> None:
    """The complete example in docs/gateway.md is a valid configuration."""
    text = (ROOT / "docs" / "gateway.md").read_text()
    example = re.search(r"```toml\n(.*?)```", text, re.S)
    assert example is not None
    cfg = _load(tmp_path, example.group(1))
    assert cfg.servers and cfg.agents


@pytest.mark.parametrize(("change", "named"), [
    (("policy_id = \"p1\"", "policy_id = \"\""), "policy_id"),
    (("[ledger]\n", "[ledger]\nextra = 1\n"), "ledger.extra: unknown key"),
    (("url = \"http://127.0.0.1:8700\"", "url = \"ftp://x\""), "ledger.url"),
    (("rate_limit = \"10/s\"", "rate_limit = \"ten a second\""), "servers.fs.rate_limit"),
    (("tier = \"destructive\"", "tier = \"scary\""), "servers.fs.tools.write_file.tier"),
    (("mode = \"step_up\"", "mode = \"maybe\""), "servers.fs.tools.write_file.mode"),
    (("allow = [\"fs/*\"]", "allow = [\"nope/*\"]"), "agents.a.allow[0]"),
    (("command = [\"npx\", \"server\"]", "command = []"), "servers.fs"),
    (("cost_micros = 5", "cost_micros = -1"), "servers.fs.tools.write_file.cost_micros"),
    (("kind = \"user\"", "kind = \"User Name\""), "subjects.rules[0].kind"),
])
def test_each_bad_key_is_named(tmp_path: Path, change: tuple[str, str], named: str) -> None:
    """A bad value is refused with an error that names its key."""
    with pytest.raises(GatewayConfigError, match=re.escape(named)):
        _load(tmp_path, GOOD.replace(*change))


def test_unreadable_and_invalid_toml_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(GatewayConfigError, match="cannot read"):
        config.load(tmp_path / "missing.toml")
    with pytest.raises(GatewayConfigError, match="not valid TOML"):
        _load(tmp_path, "policy_id = ")
