"""Tampering made directly in PostgreSQL is caught by `sealtrail verify`, which names the first bad
index or the checkpoint: an edited byte, a deleted entry, two swapped entries, a truncated log,
a payload deleted or altered without an erasure, and a checkpoint re-signed by another key."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from sealtrail.errors import VerificationError
from tests.support.query import QueryStack, on_port
from tests.support.tamper import (
    TENANT,
    Tamper,
    alter_payload,
    audit_tenant,
    delete_entry,
    delete_payload,
    edit_byte,
    resign_checkpoint,
    swap_entries,
    tampered,
    truncate,
)

CASES: list[tuple[Tamper, str]] = [
    (edit_byte, "entry 10"), (delete_entry, "entry 12"), (swap_entries, "entry 5"), (truncate, "index 30"),
    (delete_payload, "entry 8"), (alter_payload, "entry 9"), (resign_checkpoint, "checkpoint at tree size"),
]


@pytest.mark.parametrize(("tamper", "named"), CASES, ids=[t.__name__ for t, _ in CASES])
async def test_verify_fails_and_names_where(stack: QueryStack, tamper_log: int, tamper: Tamper, named: str) -> None:
    """The tampered log fails verification with the first bad index (or the checkpoint) named;
    restoring the rows makes it verify again."""
    async with tampered(stack, tamper):
        with pytest.raises(VerificationError) as e:
            await audit_tenant(stack)
        assert named in str(e.value), str(e.value)
        if tamper is not resign_checkpoint:
            assert str(e.value.index) in named
    await audit_tenant(stack)


async def test_cli_exits_non_zero_naming_the_index(stack: QueryStack, tamper_log: int) -> None:
    """`sealtrail verify --url` on a log with a payload deleted without an erasure exits 1 and
    prints one line naming the entry."""
    env = {**os.environ, "SEALTRAIL_TOKEN": stack.tokens[f"{TENANT}:auditor"]}
    async with on_port(stack.query_app) as url, tampered(stack, delete_payload):
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "sealtrail.cli.main", "verify", "--url", url, "--log", TENANT],
            env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "payload of entry 8 is missing" in done.stderr
