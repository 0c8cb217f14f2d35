"""FastAPI dependencies of the query API, as ``Annotated`` aliases.

- :data:`ServiceDep`: the started :class:`~services.query.service.QueryService`.
- :data:`PrincipalDep`: the caller, from ``Authorization: Bearer <API key>`` or a console session
  cookie (401 otherwise).
- :data:`CallsReader`, :data:`ProofsReader`, :data:`AnalyticsReader`, :data:`SubjectExporter`,
  :data:`SubjectEraserDep`: the caller, once its role is known to grant that scope (403 otherwise).

Storage is reached through the service's ports (``service.stores``), each of which confines
every read to the tenant it is given (row-level security on PostgreSQL, the adapters' queries on
SQLite); handlers pass ``principal.tenant_id``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from sealtrail.infra.auth import Principal, Scope
from services.query.console.sessions import SessionStore
from services.query.service import QueryService

_bearer = HTTPBearer(auto_error=False, description="API key `st_<key_id>_<secret>`")


async def _service(request: Request) -> QueryService:
    # async on purpose: FastAPI runs a plain ``def`` dependency in a worker thread, per request.
    service: QueryService = request.app.state.query
    return service


ServiceDep = Annotated[QueryService, Depends(_service)]


async def current_principal(request: Request, service: ServiceDep, _: Annotated[Any, Depends(_bearer)]
                            ) -> Principal:
    """The caller; HTTPBearer only documents the scheme, the authenticator checks the header.
    Without ``Authorization``, a console session cookie stands for the key that signed in
    (:mod:`services.query.console.sessions`: expiry, and the CSRF token on unsafe methods)."""
    authorization = request.headers.get("authorization")
    sessions: SessionStore | None = getattr(request.app.state, "console_sessions", None)
    if authorization is None and sessions is not None:
        principal = await sessions.principal_for(request)
        if principal is not None:
            return await service.authenticator.recheck(principal)
    return await service.authenticator.authenticate(authorization)


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def scoped(scope: Scope) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency returning the caller if its role grants ``scope`` (PermissionDeniedError if not)."""

    async def check(principal: PrincipalDep) -> Principal:
        principal.require(scope)
        return principal

    check.__name__ = f"require_{scope.value.replace(':', '_')}"
    return check


async def _log_content_reader(principal: PrincipalDep) -> Principal:
    principal.require_log_contents()
    return principal


CallsReader = Annotated[Principal, Depends(scoped(Scope.CALLS_READ))]
LogContentReader = Annotated[Principal, Depends(_log_content_reader)]
"""``proofs:read`` of a role in :data:`~sealtrail.infra.auth.LOG_CONTENT_ROLES`: entries, erasure events."""
ProofsReader = Annotated[Principal, Depends(scoped(Scope.PROOFS_READ))]
AnalyticsReader = Annotated[Principal, Depends(scoped(Scope.ANALYTICS_READ))]
SubjectExporter = Annotated[Principal, Depends(scoped(Scope.SUBJECTS_EXPORT))]
SubjectEraserDep = Annotated[Principal, Depends(scoped(Scope.SUBJECTS_ERASE))]
