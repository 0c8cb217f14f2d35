"""Walking the query API's routes as FastAPI resolves them: for the OpenAPI document and for the
``Allow`` header of a 405 (Starlette names only the first route whose path matched)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from fastapi.routing import RouteContext, iter_route_contexts
from starlette.routing import BaseRoute, Mount
from starlette.types import Scope


def api_routes(routes: Iterable[BaseRoute | RouteContext]) -> Iterator[RouteContext]:
    """Every route in ``routes`` as FastAPI documents it (included routers resolved), those of
    mounted apps included."""
    for route in routes:
        if isinstance(route, RouteContext):
            yield route
        elif isinstance(route, Mount):
            yield from api_routes(route.routes)
        else:
            yield from iter_route_contexts([route])


def allowed_methods(routes: Iterable[BaseRoute], scope: Scope) -> list[str]:
    """The methods of every route in ``routes`` whose path matches the request's, sorted."""
    path = str(scope.get("path", "")).removeprefix(str(scope.get("root_path", "")))
    allowed: set[str] = set()
    for route in api_routes(routes):
        regex, methods = getattr(route, "path_regex", None), route.methods
        if regex is not None and methods and regex.match(path):
            allowed |= methods
    return sorted(allowed)
