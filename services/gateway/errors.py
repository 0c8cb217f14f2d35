"""The gateway's errors, in the project's one hierarchy, and the JSON-RPC codes agents receive.

Codes (documented in ``docs/gateway.md``): -32001 denied by policy, -32002 pending approval
(``data.approval_id``), -32003 rate limited (``data.limit``, ``data.retry_after_s``), -32004
upstream failed (crashed, garbage, unreachable), -32005 upstream timeout, -32006 refused while the
ledger is unreachable (fail closed), -32602 invalid params (oversized arguments, unknown tool name),
-32007 server disabled by an operator (``data.reason``), -32008 server unhealthy (``data.status``).
"""

from __future__ import annotations

from sealtrail.errors import SealtrailError

DENIED = -32001
PENDING_APPROVAL = -32002
RATE_LIMITED = -32003
UPSTREAM_FAILED = -32004
UPSTREAM_TIMEOUT = -32005
LEDGER_DOWN = -32006
SERVER_DISABLED = -32007
SERVER_UNHEALTHY = -32008


class GatewayError(SealtrailError):
    """Base of the gateway's own errors."""


class UpstreamError(GatewayError):
    """An upstream server crashed mid-call, answered garbage, or cannot be reached."""


class UpstreamTimeoutError(UpstreamError):
    """An upstream server did not answer within the tool's timeout."""


class CredentialRejectedError(UpstreamError):
    """The upstream answered HTTP 401 or 403: the credential the gateway presented was rejected."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status
