"""What every request of the query API must satisfy before a route sees it: no query parameter
the route does not declare, no repeat of a single-valued one, and a JSON body that repeats no
member name in any object (RFC 8259 leaves repeats to the parser; I-JSON forbids them, and
"last wins" would let a body name one subject and act on another).

:func:`refuse_unexpected_input` is an app-wide dependency (``FastAPI(dependencies=[...])``). It
raises :class:`~fastapi.exceptions.RequestValidationError`, so the app's validation handler
answers: 401 for a caller without a valid key, else a 400 whose pointer names the parameter
(``query:<name>``) or the object (``/a/0``), never a submitted value. A parameter or member name
is itself client text: it is named only when it is a plain identifier (:func:`plain_name`).
"""

from __future__ import annotations

import typing
from collections import Counter
from collections.abc import Iterator

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from sealtrail.core.fields import plain_name
from sealtrail.core.jsonbody import loads_marking_repeats, repeated_at

_SEQUENCES = (list, tuple, set, frozenset)
_declared: dict[int, tuple[APIRoute, frozenset[str], frozenset[str]]] = {}


def _shown(path: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """``path`` up to its first segment that is not an index or a plain name."""
    for i, part in enumerate(path):
        if isinstance(part, str) and not plain_name(part):
            return path[:i]
    return path


def _invalid(loc: tuple[str | int, ...], kind: str, msg: str) -> RequestValidationError:
    return RequestValidationError([{"type": kind, "loc": loc, "msg": msg, "input": None}])


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media.startswith("application/") and (media == "application/json" or media.endswith("+json"))


def check_body(body: bytes) -> None:
    """RequestValidationError if ``body`` is not JSON or repeats a member name in any object."""
    try:
        parsed = loads_marking_repeats(body)
    except (ValueError, RecursionError) as e:
        raise _invalid(("body",), "json_invalid", "body is not valid JSON") from e
    where = repeated_at(parsed)
    if where is not None:
        raise _invalid(("body", *_shown(where)), "member_repeated", "an object repeats a member name")


def _query_fields(dependant: Dependant) -> Iterator[tuple[str, bool]]:
    for field in dependant.query_params:
        annotation = field.field_info.annotation
        arms = (annotation, *typing.get_args(annotation))
        yield field.alias, any(typing.get_origin(a) in _SEQUENCES or a in _SEQUENCES for a in arms)
    for sub in dependant.dependencies:
        yield from _query_fields(sub)


def _declared_params(route: APIRoute) -> tuple[frozenset[str], frozenset[str]]:
    """The route's query parameter names, and those that take a list (cached per route)."""
    cached = _declared.get(id(route))
    if cached is None or cached[0] is not route:
        fields = list(_query_fields(route.dependant))
        cached = (route, frozenset(n for n, _ in fields), frozenset(n for n, many in fields if many))
        _declared[id(route)] = cached
    return cached[1], cached[2]


def check_query(route: APIRoute, names: list[str]) -> None:
    """RequestValidationError for the first query parameter that ``route`` does not declare, or
    that repeats without taking a list."""
    known, lists = _declared_params(route)
    counts = Counter(names)
    for name in names:
        loc: tuple[str, ...] = ("query", name) if plain_name(name) else ("query",)
        if name not in known:
            raise _invalid(loc, "parameter_unknown", "unknown query parameter")
        if counts[name] > 1 and name not in lists:
            raise _invalid(loc, "parameter_repeated", "the parameter is given more than once")


async def refuse_unexpected_input(request: Request) -> None:
    """The app-wide dependency: see the module docstring."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    if request.query_params:
        check_query(route, [name for name, _ in request.query_params.multi_items()])
    if route.body_field is not None and _is_json(request.headers.get("content-type")):
        body = await request.body()
        if body:
            check_body(body)
