"""A small MCP server on the ``mcp`` SDK, to put behind ``sealtrail gateway`` (docs/gateway.md).

    python examples/mcp_server.py                 # stdio
    python examples/mcp_server.py --http 8801     # Streamable HTTP at http://127.0.0.1:8801/mcp

Its tools cover the gateway's tiers and faults: ``echo``, ``add`` and ``lookup_customer`` read;
``update_note`` writes; ``delete_record`` is destructive; ``stats`` counts what changed state;
``sleep`` hangs for a while; ``crash`` ends the process mid-call; ``grow`` adds a tool at run time and
announces the changed list.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from mcp.server.mcpserver import Context, MCPServer

server: MCPServer = MCPServer("sealtrail-example", version="1")
_notes: dict[str, str] = {}
_calls: dict[str, int] = {}


@server.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def lookup_customer(email: str) -> dict[str, str]:
    """A customer record by e-mail address (made up from the address)."""
    return {"email": email, "name": email.split("@")[0].title(), "plan": "pro"}


@server.tool()
def update_note(key: str, text: str) -> str:
    """Store a note under a key."""
    _notes[key] = text
    _calls["update_note"] = _calls.get("update_note", 0) + 1
    return f"stored {len(text)} characters under {key}"


@server.tool()
def delete_record(record_id: str) -> str:
    """Delete a record (irreversible)."""
    _calls["delete_record"] = _calls.get("delete_record", 0) + 1
    return f"deleted {record_id}"


@server.tool()
def stats() -> dict[str, int]:
    """How many times each state-changing tool ran in this process."""
    return dict(_calls)


@server.tool()
async def sleep(seconds: float) -> str:
    """Wait, then answer (for timeouts)."""
    await asyncio.sleep(seconds)
    return f"slept {seconds} s"


@server.tool()
def crash() -> str:
    """End the server process in the middle of the call."""
    os._exit(3)


@server.tool()
async def grow(name: str, ctx: Context) -> str:
    """Add a tool called ``name`` (it echoes) and tell the client the tool list changed."""

    def added(text: str) -> str:
        return text

    server.add_tool(added, name=name, description=f"A tool added at run time: {name}.")
    await ctx.session.send_tool_list_changed()
    return f"added {name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--http", type=int, metavar="PORT", help="serve Streamable HTTP on 127.0.0.1:PORT")
    parser.add_argument("--json", action="store_true", help="answer POSTs with JSON bodies rather than SSE streams")
    args = parser.parse_args()
    if args.http:
        server.run("streamable-http", host="127.0.0.1", port=args.http, json_response=args.json)
    else:
        server.run()


if __name__ == "__main__":
    main()
