"""An MCP server on the ``mcp`` SDK over Streamable HTTP that appends the headers of every HTTP
request it receives to a JSON-lines file, so a test can prove what a gateway forwards.

Run as ``python -m tests.support.header_recording_server --port PORT --record FILE``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import Receive, Scope, Send

server: MCPServer = MCPServer("header-recorder", version="1")


@server.tool()
def whoami() -> str:
    """A harmless read."""
    return "the header recorder"


@server.tool()
def secret(name: str) -> str:
    """A tool only a stronger scope may call."""
    return f"secret {name}"


class Recording:
    def __init__(self, app: Any, record: Path) -> None:
        self.app, self.record = app, record

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]]
            with self.record.open("a") as f:
                f.write(json.dumps({"method": scope["method"], "path": scope["path"], "headers": headers}) + "\n")
        await self.app(scope, receive, send)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--record", type=Path, required=True)
    args = parser.parse_args()
    app = server.streamable_http_app(
        json_response=True, transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))
    uvicorn.run(Recording(app, args.record), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
