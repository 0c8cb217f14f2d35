"""An MCP server (stdio, on the ``mcp`` SDK's low-level server) whose tools are whatever the JSON file
``$PINNING_SPEC`` lists (``{"tools": [...]}``, each tool object sent exactly as written). A test
rewrites the file to add, remove, rename or redefine tools; the server notices within 0.1 s and
sends ``notifications/tools/list_changed`` (unless ``$PINNING_SILENT`` is 1). Every call it runs is
appended to ``$PINNING_CALLS`` (one tool name a line), so a test can tell that a refused call never
reached it."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions, Server
from mcp.server.session import ServerSession
from mcp.server.stdio import stdio_server

SPEC = Path(os.environ["PINNING_SPEC"])
CALLS = Path(os.environ["PINNING_CALLS"])
SILENT = os.environ.get("PINNING_SILENT") == "1"
"""Change tools without announcing it (only a new listing, such as a health check's, finds out)."""


def _spec() -> str:
    return SPEC.read_text()


def _ran(name: str) -> None:
    with CALLS.open("a") as f:
        f.write(name + "\n")


def _tools() -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = json.loads(SPEC.read_text())["tools"]
    return tools


async def main() -> None:
    server: Server[Any] = Server("pinning-upstream", version="1")
    sessions: list[ServerSession] = []

    async def list_tools(ctx: ServerRequestContext[Any, Any], _p: types.PaginatedRequestParams) -> dict[str, Any]:
        if ctx.session not in sessions:
            sessions.append(ctx.session)
        return {"tools": _tools()}

    async def call_tool(ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams) -> dict[str, Any]:
        if params.name not in {t["name"] for t in _tools()}:
            return {"content": [{"type": "text", "text": f"no tool {params.name}"}], "isError": True}
        _ran(params.name)
        return {"content": [{"type": "text", "text": f"{params.name} ran"}]}

    async def watch() -> None:
        last = _spec()
        while True:
            await asyncio.sleep(0.1)
            now = _spec()
            if now != last and not SILENT:
                last = now
                for session in sessions:
                    await session.send_tool_list_changed()

    server.add_request_handler("tools/list", types.PaginatedRequestParams, list_tools)
    server.add_request_handler("tools/call", types.CallToolRequestParams, call_tool)
    watcher = asyncio.create_task(watch())
    try:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options(NotificationOptions(tools_changed=True)))
    finally:
        watcher.cancel()


if __name__ == "__main__":
    asyncio.run(main())
