"""FastAPI dependencies of the query API, as ``Annotated`` aliases.

- :data:`ServiceDep`: the started :class:`~services.query.service.QueryService`.
- :data:`PrincipalDep`: the caller, from ``Authorization: Bearer <API key>`` (401 otherwise).
- :data:`CallsReader`, :data:`ProofsReader`, :data:`AnalyticsReader`, :data:`SubjectExporter`,
  :data:`SubjectEraserDep`: the caller, once its role is known to grant that scope (403 otherwise).
- :data:`TenantConn`: a read-only connection running as ``sealtrail_reader`` with
  ``sealtrail.tenant`` set to the caller's tenant, so row-level security confines every query
  to that tenant. Declare it after the scope alias: the scope is then checked before a
  connection is taken from the pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from sealtrail.infra.auth import Principal, Scope
from sealtrail.infra.postgres import Conn
from services.query.db import tenant_scope
from services.query.service import QueryService

_bearer = HTTPBearer(auto_error=False, description="API key `st_<key_id>_<secret>`")


async def _service(request: Request) -> QueryService:
    # async on purpose: FastAPI runs a plain ``def`` dependency in a worker thread, per request.
    service: QueryService = request.app.state.query
    return service


ServiceDep = Annotated[QueryService, Depends(_service)]


async def current_principal(request: Request, service: ServiceDep, _: Annotated[Any, Depends(_bearer)]
                            ) -> Principal:
    """The caller; HTTPBearer only documents the scheme, the authenticator checks the header."""
    return await service.authenticator.authenticate(request.headers.get("authorization"))


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def scoped(scope: Scope) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency returning the caller if its role grants ``scope`` (PermissionDeniedError if not)."""

    async def check(principal: PrincipalDep) -> Principal:
        principal.require(scope)
        return principal

    check.__name__ = f"require_{scope.value.replace(':', '_')}"
    return check


CallsReader = Annotated[Principal, Depends(scoped(Scope.CALLS_READ))]
ProofsReader = Annotated[Principal, Depends(scoped(Scope.PROOFS_READ))]
AnalyticsReader = Annotated[Principal, Depends(scoped(Scope.ANALYTICS_READ))]
SubjectExporter = Annotated[Principal, Depends(scoped(Scope.SUBJECTS_EXPORT))]
SubjectEraserDep = Annotated[Principal, Depends(scoped(Scope.SUBJECTS_ERASE))]


async def _tenant_conn(principal: PrincipalDep, service: ServiceDep) -> AsyncIterator[Conn]:
    async with tenant_scope(service.pool, principal.tenant_id) as conn:
        yield conn


TenantConn = Annotated[Conn, Depends(_tenant_conn)]
