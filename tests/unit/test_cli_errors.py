"""Every edge of the command line ends with one clear line (never a traceback or a page of help)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from sealtrail import cli
from sealtrail.cli.embedded.datadir import DataDir, initialise
from sealtrail.cli.serve import first_run_text
from sealtrail.infra.logs import shorten_traceback
from sealtrail.infra.servicekey import load_service_signer
from sealtrail.infra.workerapp import worker_app


def _run(*args: str, env: dict[str, str | None] | None = None) -> Result:
    cli._register()
    return CliRunner().invoke(cli.app, list(args), env=env)


def _one_line(result: Result, code: int = 1) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and result.stderr.count("\n") == 1, result.stderr
    return result.stderr


def test_verify_without_a_token_names_the_missing_option() -> None:
    """`verify --url U --log L` with no token: the missing --token is named, not the whole help."""
    result = _run("verify", "--url", "http://127.0.0.1:9", "--log", "acme", env={"SEALTRAIL_TOKEN": None})
    assert result.exit_code == 2
    assert "Missing option '--token'" in result.output and "SEALTRAIL_TOKEN" in result.output
    assert "Commands" not in result.output
    result = _run("verify", "--url", "http://127.0.0.1:9", env={"SEALTRAIL_TOKEN": "t"})
    assert result.exit_code == 2 and "Missing option '--log'" in result.output


def test_serve_on_a_data_dir_that_is_a_file(tmp_path: Path) -> None:
    """--data-dir naming a regular file: one line saying it is not a directory."""
    (tmp_path / "events.json").write_text("{}")
    err = _one_line(_run("serve", "--data-dir", str(tmp_path / "events.json"), "--port", "8300"))
    assert err == f"error: --data-dir {tmp_path / 'events.json'} is not a directory\n"


def test_serve_on_a_port_in_use_creates_nothing_and_prints_no_token(tmp_path: Path) -> None:
    """The address is bound before the first run: a busy port is one line, and no data dir, key or token."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _run("serve", "--data-dir", str(tmp_path / "d"), "--port", str(port))
    err = _one_line(result)
    assert err == f"error: cannot listen on 127.0.0.1:{port}: address already in use\n"
    assert result.stdout == "" and not (tmp_path / "d").exists()


@pytest.mark.parametrize("command", [["serve"], ["ingest"], ["query"], ["ledger"], ["projector"]])
@pytest.mark.parametrize("port", ["0", "65536", "99999"])
def test_every_port_option_refuses_values_outside_1_to_65535(command: list[str], port: str) -> None:
    """A port uvicorn would wrap modulo 65536 is refused as a usage error."""
    result = _run(*command, "--port", port)
    assert result.exit_code == 2 and "--port" in result.output


def test_kek_generate_into_a_missing_directory(tmp_path: Path) -> None:
    """The missing directory is named."""
    err = _one_line(_run("admin", "kek", "generate", str(tmp_path / "nodir" / "kek")))
    assert err == f"error: cannot write {tmp_path / 'nodir' / 'kek'}: directory {tmp_path / 'nodir'} does not exist\n"


def test_receipt_key_generate_with_a_bad_name_or_path(tmp_path: Path) -> None:
    """A key name with a space, or a missing directory: one line each, and no file written."""
    err = _one_line(_run("admin", "receipt-key", "generate", str(tmp_path / "q.key"), "--name", "bad name+x"))
    assert err.startswith("error: --name 'bad name+x': key name must be") and not (tmp_path / "q.key").exists()
    err = _one_line(_run("admin", "receipt-key", "generate", str(tmp_path / "nodir" / "q.key")))
    assert "does not exist" in err


def test_projector_once_without_a_database() -> None:
    """`projector --once` with no SEALTRAIL_DATABASE_URL says so in one line, exit 1."""
    err = _one_line(_run("projector", "--once", env={"SEALTRAIL_DATABASE_URL": None}))
    assert err.startswith("error: SEALTRAIL_DATABASE_URL is not set")


def test_signing_key_list_shows_the_erasure_receipt_key(tmp_path: Path) -> None:
    """`signing-key list --data-dir` lists what GET /v1/keys publishes, the erasure-receipt key included."""
    data = DataDir(tmp_path / "d")
    asyncio.run(initialise(data))
    result = _run("admin", "signing-key", "list", "--data-dir", str(data.root))
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.stdout.splitlines()]
    expected = load_service_signer(data.query_key).verifier().vkey()
    assert ["erasure-receipt", "-", "..", "now", expected] in rows


def test_first_run_text_says_how_to_get_an_auditor_key() -> None:
    """The first run makes no auditor key: the verify hint shows how to create one and uses SEALTRAIL_TOKEN."""
    text = first_run_text(Path("d"), "http://127.0.0.1:8300", "default", {"operator": "st_x", "gateway": "st_y"})
    assert "admin key create --data-dir d --tenant default --role auditor" in text
    assert "SEALTRAIL_TOKEN=<auditor token> sealtrail verify --url http://127.0.0.1:8300 --log default" in text
    assert "--token <auditor token>" not in text


def test_a_logged_traceback_is_shortened_to_its_reason() -> None:
    """A traceback logged as a message keeps only the last exception: the reason for Sealtrail's errors,
    the type only for others (their messages may quote input)."""
    own = ('Traceback (most recent call last):\n  File "x.py", line 1, in f\n    raise E\n'
           "sealtrail.errors.ServiceStartError: no receipt key: set SEALTRAIL_SERVICE_KEY_FILE\n")
    assert shorten_traceback(own) == "ServiceStartError: no receipt key: set SEALTRAIL_SERVICE_KEY_FILE"
    other = 'Traceback (most recent call last):\n  File "x.py", line 1\nKeyError: \'alice@example.com\'\n'
    assert shorten_traceback(other) == "KeyError"
    assert shorten_traceback("plain message") == "plain message"


async def test_a_failed_worker_calls_the_terminate_set_after_creation() -> None:
    """The command line replaces WorkerExit.terminate to stop its server: a failing worker calls it."""
    terminated = asyncio.Event()

    async def run() -> None:
        raise RuntimeError("boom")

    app, status = worker_app(name="w", run=run, stop=lambda: None, readiness=lambda: (False, {}))
    status.terminate = terminated.set
    async with app.router.lifespan_context(app):
        await asyncio.wait_for(terminated.wait(), timeout=5)
    assert status.code == 1


@pytest.mark.parametrize("command", [["ingest"], ["query"], ["ledger"], ["projector", "--once"]])
def test_a_refused_setting_at_start_is_one_line(command: list[str], tmp_path: Path) -> None:
    """A setting the services refuse (an unknown log level) stops every service command with one
    line naming the variable, through the real console script: no traceback."""
    import os
    import subprocess
    import sys

    script = Path(sys.executable).with_name("sealtrail")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALTRAIL_")}
    env |= {"SEALTRAIL_LOG_LEVEL": "verbose", "HOME": str(tmp_path)}
    done = subprocess.run([str(script), *command, "--port", "1"] if command[0] != "projector" else
                          [str(script), *command], capture_output=True, text=True, env=env, timeout=60,
                          cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: SEALTRAIL_LOG_LEVEL"), done.stderr
    assert "verbose" not in lines[0] and "Traceback" not in done.stderr
