"""No answered call loses its event: the gateway writes each event to its on-disk spool (fsync'd,
one write shared by concurrent calls) before the agent gets the answer, so a SIGKILL right after the
answers arrive loses nothing; the next gateway process on the same spool delivers every event
exactly once and the log verifies."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from tests.support.gateway import Setup, agent, ledger_events, wait_events, write_setup
from tests.support.serve import Served, cli, create_key, start_serve, wait_for_checkpoint

SESSIONS = 8
CALLS_PER_SESSION = 6
DENIED = 4


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = start_serve(tmp_path / "data")
    yield s
    s.stop()


@pytest.fixture
def setup(served: Served, tmp_path: Path) -> Iterator[Setup]:
    s = write_setup(tmp_path / "gw", served)
    yield s
    s.stop_all()


async def _allowed(url: str, token: str, session: int) -> list[str]:
    texts = []
    async with agent(url, token) as c:
        for i in range(CALLS_PER_SESSION):
            text = f"durable-{session}-{i}"
            result = await c.call_tool("demo__echo", {"text": text})
            assert not result.is_error
            texts.append(text)
    return texts


async def _denied(url: str, token: str) -> list[int]:
    answered = []
    async with agent(url, token) as c:
        for i in range(DENIED):
            with pytest.raises(MCPError) as refused:
                await c.call_tool("demo__add", {"a": 1000 + i, "b": 0})
            assert refused.value.code == -32001
            answered.append(1000 + i)
    return answered


def _arguments(served: Served, investigator: str, event_id: str) -> dict[str, Any]:
    r = httpx.get(f"{served.url}/v1/calls/{event_id}", params={"purpose": "incident.review"},
                  headers={"Authorization": f"Bearer {investigator}"}, timeout=10)
    assert r.status_code == 200, r.text
    arguments: dict[str, Any] = r.json()["payload"]["arguments"]
    return arguments


async def test_sigkill_right_after_the_answers_loses_no_event(setup: Setup, served: Served) -> None:
    """8 sessions of allowed calls and a session of denied calls at once, SIGKILL of the gateway the
    moment the last answer arrives, a new gateway on the same spool: every answered call's tool_call
    event is in the ledger exactly once (matched by its sealed arguments) and `sealtrail verify`
    passes."""
    gw = setup.start()
    alice, bob = setup.key("alice"), setup.key("bob")
    allowed = asyncio.gather(*(_allowed(gw.url, alice, s) for s in range(SESSIONS)))
    texts_per_session, denied_args = await asyncio.gather(allowed, _denied(gw.url, bob))
    gw.proc.send_signal(signal.SIGKILL)
    gw.proc.wait(timeout=10)
    in_ledger_at_kill = len(ledger_events(served, type_="tool_call"))
    answered_texts = sorted(t for texts in texts_per_session for t in texts)
    answered_denied = sorted(denied_args)
    total = len(answered_texts) + len(answered_denied)

    setup.start()  # same address, so the same spool: it delivers what the killed process left
    calls = wait_events(served, lambda e: e["type"] == "tool_call", total, timeout=60)
    await asyncio.sleep(1.5)  # a late duplicate would show here
    calls = ledger_events(served, type_="tool_call")
    assert len(calls) == total, f"{len(calls)} tool_call events for {total} answered calls " \
                                f"({in_ledger_at_kill} were in the ledger when the gateway was killed)"
    assert len({c["event_id"] for c in calls}) == total

    investigator = create_key(served, "investigator")
    texts, denied = [], []
    for c in calls:
        arguments = _arguments(served, investigator, c["event_id"])
        if c["tool_name"] == "echo":
            assert (c["decision"], c["status"]) == ("allow", "ok")
            texts.append(arguments["text"])
        else:
            assert (c["tool_name"], c["decision"], c["status"]) == ("add", "deny", "denied")
            denied.append(arguments["a"])
    assert sorted(texts) == answered_texts
    assert sorted(denied) == answered_denied

    auditor = create_key(served, "auditor")
    wait_for_checkpoint(served.url, auditor, "default", len(ledger_events(served)))
    done = cli("verify", "--url", served.url, "--log", "default", "--token", auditor)
    assert done.returncode == 0, done.stderr + done.stdout
