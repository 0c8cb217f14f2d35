"""`sealtrail verify --calls` holds what the query API shows of every entry to the verified log, on
a real `sealtrail serve`: it passes on an untouched log and names the entry when a stored copy was
changed under the API (a column, or the tenant column that hides an entry)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator

import pytest

from tests.support.serve import (
    TENANT,
    Served,
    cli,
    create_key,
    send_events,
    serve_event,
    start_serve,
    wait_for_checkpoint,
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, str]]:
    served = start_serve(tmp_path_factory.mktemp("verify-calls") / "data")
    try:
        ids = asyncio.run(send_events(served.url, served.tokens["gateway"], [serve_event(i) for i in range(12)]))
        assert len(ids) == 12
        token = create_key(served, "investigator")
        wait_for_checkpoint(served.url, token, TENANT, 12)
        yield served, token
    finally:
        served.stop()


def _verify(served: Served, token: str) -> tuple[int, str, str]:
    done = cli("verify", "--url", served.url, "--log", TENANT, "--calls", env={"SEALTRAIL_TOKEN": token})
    return done.returncode, done.stdout, done.stderr


def _tamper(served: Served, sql: str) -> None:
    with sqlite3.connect(served.data_dir / "sealtrail.db") as db:
        assert db.execute(sql).rowcount == 1


def test_an_untouched_log_passes_with_every_call_checked(served: tuple[Served, str]) -> None:
    """Every entry under the checkpoint is shown once, with its leaf hash and signed header."""
    code, out, err = _verify(*served)
    assert code == 0, err
    assert "calls the query API shows match the signed entries" in out


@pytest.mark.parametrize(("sql", "undo", "named"), [
    ("UPDATE entries SET agent_id = 'innocent' WHERE idx = 4", "UPDATE entries SET agent_id = 'agent-1' WHERE idx = 4",
     "stored copies of entry 4 disagree with the signed entry (agent_id)"),
    ("UPDATE entries SET tenant_id = 'nobody' WHERE idx = 7",
     f"UPDATE entries SET tenant_id = '{TENANT}' WHERE idx = 7", "entry 7"),
], ids=["agent-column", "tenant-column"])
def test_a_changed_copy_fails_naming_the_entry(served: tuple[Served, str], sql: str, undo: str, named: str) -> None:
    """A column changed under the API fails verify --calls with one line naming the entry; the log
    itself still verifies without --calls (the entry bytes are untouched)."""
    _tamper(served[0], sql)
    try:
        code, _, err = _verify(*served)
        assert code == 1 and named in err, err
        plain = cli("verify", "--url", served[0].url, "--log", TENANT, env={"SEALTRAIL_TOKEN": served[1]})
        assert plain.returncode == 0, plain.stderr
    finally:
        _tamper(served[0], undo)
    assert _verify(*served)[0] == 0
