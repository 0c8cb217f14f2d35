"""Settings refuse bad ``SEALTRAIL_*`` values with one reason naming the variable, never the value."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from sealtrail.cli.admin import register
from sealtrail.errors import ServiceStartError
from sealtrail.infra.settings import LOG_LEVELS, Settings

_PASSWORD = "s3cret-pw"


def _admin() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_an_unknown_log_level_names_the_variable_and_the_accepted_levels(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """SEALTRAIL_LOG_LEVEL=verbose fails the construction with the variable and every accepted level."""
    monkeypatch.setenv("SEALTRAIL_LOG_LEVEL", "verbose")
    with pytest.raises(ServiceStartError) as caught:
        Settings()
    assert str(caught.value) == "SEALTRAIL_LOG_LEVEL: must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL (any case)"


@pytest.mark.parametrize("given", ["debug", "Warning", " error "])
def test_a_known_log_level_in_any_case_is_normalised(monkeypatch: pytest.MonkeyPatch, given: str) -> None:
    """Levels are accepted in any case (and with stray spaces) and handed on in upper case."""
    monkeypatch.setenv("SEALTRAIL_LOG_LEVEL", given)
    assert Settings().log_level == given.strip().upper()
    assert Settings().log_level in LOG_LEVELS


def test_other_invalid_values_name_their_variable_without_repeating_the_value(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A non-number partition count is named; the value itself (it could be a secret) is not echoed."""
    monkeypatch.setenv("SEALTRAIL_TOPIC_PARTITIONS", "twelve")
    with pytest.raises(ServiceStartError) as caught:
        Settings()
    assert str(caught.value).startswith("SEALTRAIL_TOPIC_PARTITIONS: ") and "twelve" not in str(caught.value)


@pytest.mark.parametrize(("url", "reason"), [
    (f"postgresql://u:{_PASSWORD}@127.0.0.1:notaport/x", "a port is not a number from 1 to 65535"),
    (f"postgresql://u:{_PASSWORD}@127.0.0.1:70000/x", "a port is not a number from 1 to 65535"),
    (f"postgresql://u:{_PASSWORD}@h1:5432,h2:x/x", "a port is not a number from 1 to 65535"),
    (f"mysql://u:{_PASSWORD}@127.0.0.1/x", "it must start with postgresql:// or postgres://"),
    (f"postgresql://u:{_PASSWORD}@[::1/x", "it cannot be parsed as a URL"),
])
def test_a_malformed_database_url_is_refused_without_its_password(url: str, reason: str) -> None:
    """require_database() says what is wrong with the URL and quotes none of it."""
    with pytest.raises(ServiceStartError) as caught:
        Settings(database_url=url).require_database()
    message = str(caught.value)
    assert message.startswith(f"SEALTRAIL_DATABASE_URL is not a valid PostgreSQL URL: {reason}")
    assert _PASSWORD not in message and "notaport" not in message


@pytest.mark.parametrize("url", [
    "postgresql://u:pw@127.0.0.1:5432/x", "postgres://u@h/x", "postgresql://h1:5432,h2:5433/x",
    "postgresql://[::1]:5432/x", "postgresql:///x?host=/run/postgresql", "postgresql://u:p%2Fw@h:5432/x",
])
def test_well_formed_database_urls_are_accepted(url: str) -> None:
    """Multi-host, IPv6, socket and percent-encoded URLs that asyncpg accepts pass unchanged."""
    assert Settings(database_url=url).require_database() == url


def test_admin_with_a_malformed_database_url_prints_one_line_without_the_password() -> None:
    """`admin key list` with port `notaport`: one error line, exit 1, no traceback, no password."""
    result = CliRunner().invoke(_admin(), ["admin", "key", "list", "--tenant", "acme"], env={
        "SEALTRAIL_DATABASE_URL": f"postgresql://u:{_PASSWORD}@127.0.0.1:notaport/x"})
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: SEALTRAIL_DATABASE_URL is not a valid PostgreSQL URL: a port is")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert _PASSWORD not in result.output


def test_admin_with_an_unknown_log_level_prints_one_line() -> None:
    """Any bad setting met by an admin command is one `error:` line naming the variable."""
    result = CliRunner().invoke(_admin(), ["admin", "tenant", "list"], env={
        "SEALTRAIL_DATABASE_URL": "postgresql://u@127.0.0.1:1/x", "SEALTRAIL_LOG_LEVEL": "verbose"})
    assert result.exit_code == 1, result.output
    assert result.stderr == ("error: SEALTRAIL_LOG_LEVEL: must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
                             " (any case)\n")


def test_the_signing_key_dir_defaults_to_a_state_directory_not_the_working_directory(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without SEALTRAIL_SIGNING_KEY_DIR the ledger's keys go under $XDG_STATE_HOME (else
    ~/.local/state), an absolute path outside the checkout, never ./keys."""
    monkeypatch.delenv("SEALTRAIL_SIGNING_KEY_DIR", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert Settings().signing_key_dir == tmp_path / "state" / "sealtrail" / "ledger-keys"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/state")  # not absolute: ignored, as XDG says
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert Settings().signing_key_dir == tmp_path / "home" / ".local" / "state" / "sealtrail" / "ledger-keys"
    monkeypatch.setenv("SEALTRAIL_SIGNING_KEY_DIR", "/srv/keys")
    assert Settings().signing_key_dir == Path("/srv/keys")
