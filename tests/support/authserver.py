"""A Streamable HTTP MCP server on the ``mcp`` SDK that requires a bearer token the test can change.

Run as ``python -m tests.support.authserver --port P --token-file F``: every HTTP request must
carry ``Authorization: Bearer <the token in F now>`` (read at each request, so writing F rotates
the token at the upstream), otherwise it is answered 401. :class:`AuthServer` starts it as a child
process, rotates its token, and stops and restarts it on the same port (an outage).
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

ROOT = Path(__file__).resolve().parents[2]
server: MCPServer = MCPServer("docs-upstream", version="1")


@server.tool()
def search(query: str) -> str:
    """Search the documents (made up from the query)."""
    return f"3 documents match {query!r}"


@server.tool()
def word_count(text: str) -> int:
    """Count the words of a text."""
    return len(text.split())


class RequireToken:
    def __init__(self, app: Any, token_file: Path) -> None:
        self.app, self.token_file = app, token_file

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            expected = self.token_file.read_text().strip()
            given = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            if not hmac.compare_digest(given.encode(), f"Bearer {expected}".encode()):
                await JSONResponse({"error": "invalid_token"}, status_code=401,
                                   headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})(scope, receive, send)
                return
        await self.app(scope, receive, send)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token-file", type=Path, required=True)
    args = parser.parse_args()
    app = server.streamable_http_app(json_response=True, transport_security=TransportSecuritySettings(
        enable_dns_rebinding_protection=False))
    uvicorn.run(RequireToken(app, args.token_file), host="127.0.0.1", port=args.port, log_level="warning")


@dataclass
class AuthServer:
    """The server above as a child process on ``port``."""

    dir: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    starts: int = field(default=0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    @property
    def token_file(self) -> Path:
        return self.dir / "upstream.token"

    def set_token(self, token: str) -> None:
        """Rotate the token at the upstream: the next request must carry this one."""
        tmp = self.token_file.with_suffix(".tmp")
        tmp.write_text(token + "\n")
        tmp.replace(self.token_file)

    def start(self) -> AuthServer:
        self.dir.mkdir(parents=True, exist_ok=True)
        log = open(self.dir / f"authserver-{self.starts}.log", "wb")  # noqa: SIM115 - the child keeps it
        self.starts += 1
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.support.authserver", "--port", str(self.port),
                                      "--token-file", str(self.token_file)], cwd=ROOT, stdout=log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the auth test server exited with {self.proc.returncode}: "
                                   f"{(self.dir / f'authserver-{self.starts - 1}.log').read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"http://127.0.0.1:{self.port}/mcp", timeout=1)
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the auth test server did not listen within 30 s")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None


if __name__ == "__main__":
    main()
