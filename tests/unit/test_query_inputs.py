"""The query API's request checks (services/query/inputs.py): repeated JSON members anywhere in a
body, unknown and repeated query parameters, and problems that name only plain identifiers."""

from __future__ import annotations

from typing import Annotated

import pytest
from fastapi import FastAPI, Query
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from services.query.inputs import check_body, check_query, plain_name


def _route() -> APIRoute:
    app = FastAPI()

    @app.get("/x")
    async def x(agent: str | None = None, tag: Annotated[list[str] | None, Query()] = None,
                start: Annotated[int, Query(alias="from")] = 0) -> None:
        return None

    (route,) = [r for r in app.router.routes if isinstance(r, APIRoute)]
    return route


def _loc(error: RequestValidationError) -> tuple[object, ...]:
    return tuple(error.errors()[0]["loc"])


@pytest.mark.parametrize(("body", "loc"), [
    (b'{"a": 1, "a": 2}', ("body",)),
    (b'{"a": {"b": [1, {"c": 1, "c": 1}]}}', ("body", "a", "b", 1)),
    (b'{"user:alice@example.com": {"c": 1, "c": 2}}', ("body",)),
    (b'[{"k": 1}, {"k": 1, "k": 1}]', ("body", 1)),
])
def test_a_repeated_member_anywhere_is_refused(body: bytes, loc: tuple[object, ...]) -> None:
    """The pointer leads to the object that repeats a name, stopping before any segment that is
    not a plain name; neither the name nor the value is in the error."""
    with pytest.raises(RequestValidationError) as refused:
        check_body(body)
    assert _loc(refused.value) == loc and refused.value.errors()[0]["type"] == "member_repeated"
    assert "alice" not in str(refused.value.errors())


@pytest.mark.parametrize("body", [b"nope", b'{"a": NaN}', b'{"a": 1', b"[" * 100_000])
def test_a_body_that_is_not_json_is_refused(body: bytes) -> None:
    with pytest.raises(RequestValidationError) as refused:
        check_body(body)
    assert refused.value.errors()[0]["type"] == "json_invalid"


def test_distinct_members_pass() -> None:
    check_body(b'{"a": {"a": 1}, "b": [{"a": 1}, {"a": 2}]}')


def test_query_parameters_must_be_declared_and_single_unless_lists() -> None:
    """Declared names (aliases included) pass, list parameters may repeat; an unknown name or a
    repeated single-valued one is refused, named only when it is a plain identifier."""
    route = _route()
    check_query(route, ["agent", "from", "tag", "tag"])
    for names, loc in ((["agnet"], ("query", "agnet")), (["agent", "agent"], ("query", "agent")),
                       (["start"], ("query", "start")), (["user:a@example.com"], ("query",))):
        with pytest.raises(RequestValidationError) as refused:
            check_query(route, names)
        assert _loc(refused.value) == loc, names


def test_plain_names() -> None:
    assert plain_name("agent_id") and plain_name("_x9")
    assert not plain_name("user:alice@example.com") and not plain_name("9a") and not plain_name("a" * 65)
