"""Every ``--help`` of the CLI renders its text as written: no reST markup, no text lost to rich markup."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import typer
from typer.testing import CliRunner

from sealtrail import cli


def _commands(group: typer.Typer, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for command in group.registered_commands:
        yield (*path, command.name or (command.callback.__name__ if command.callback else ""))
    for sub in group.registered_groups:
        if sub.typer_instance is not None and sub.name:
            yield (*path, sub.name)
            yield from _commands(sub.typer_instance, (*path, sub.name))


def _all_commands() -> list[tuple[str, ...]]:
    cli._register()
    return sorted(set(_commands(cli.app)))


@pytest.mark.parametrize("command", _all_commands(), ids=" ".join)
def test_help_has_no_rest_markup_and_keeps_brackets(command: tuple[str, ...]) -> None:
    """`sealtrail ... --help` exits 0, shows no ``double backquotes``, and keeps bracketed text like [a-z0-9-]."""
    result = CliRunner().invoke(cli.app, [*command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "``" not in result.output
    assert ": ," not in result.output  # what "[a-z0-9-]," becomes when rich takes it for markup


def test_tenant_create_help_shows_the_allowed_characters() -> None:
    """The tenant id's allowed characters appear in `admin tenant create --help`."""
    cli._register()
    result = CliRunner().invoke(cli.app, ["admin", "tenant", "create", "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert re.search(r"tenant id = log id: \[a-z0-9-\], up to 63", result.output)
