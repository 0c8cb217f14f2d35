"""A stdio 'MCP server' that answers the handshake and tools/list properly, then garbage: for
``not_json`` a line that is not JSON (and nothing else), for ``bad_result`` a response whose result
is not a valid CallToolResult. Written by hand, without the SDK, so that it can misbehave."""

from __future__ import annotations

import json
import sys

TOOLS = [{"name": n, "description": n, "inputSchema": {"type": "object"}} for n in ("not_json", "bad_result")]


def answer(msg_id: object, result: object) -> None:
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": msg_id, "result": result}) + "\n")
    sys.stdout.flush()


def main() -> None:
    for line in sys.stdin:
        msg = json.loads(line)
        method, msg_id = msg.get("method"), msg.get("id")
        if method == "initialize":
            answer(msg_id, {"protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}},
                            "serverInfo": {"name": "garbage", "version": "1"}})
        elif method == "tools/list":
            answer(msg_id, {"tools": TOOLS})
        elif method == "tools/call" and msg["params"]["name"] == "not_json":
            sys.stdout.write("this is not JSON-RPC {{{\n")
            sys.stdout.flush()
        elif method == "tools/call":
            answer(msg_id, {"content": "not a list", "isError": "maybe"})
        elif msg_id is not None:
            sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": msg_id, "error": {"code": -32601,
                                                                                  "message": "no"}}) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
