"""Bad input to the query API over the real stack (PostgreSQL, Kafka): each case is a 400 problem
with a pointer that repeats no submitted value, never a 500 and never a silent answer; a wrong
method is a 405 with Allow; the purpose note must be strict percent-encoded UTF-8."""

from __future__ import annotations

import uuid

from tests.e2e.conftest import Seed
from tests.support.query import QueryStack
from tests.support.query_bad_input import check_cases, check_methods, check_no_echo, check_purpose_note


async def test_bad_input_is_a_400_problem_on_postgres(stack: QueryStack, seed: Seed) -> None:
    """Cursors with a null time, an out-of-range index or an overflowing time; times near year 1
    or 9999; sizes past 2^63-1; unknown, repeated and out-of-set parameters; bodies that repeat a
    member or are not JSON: each a 400 with its pointer; problems repeat no log, event or size."""
    await check_cases(stack.api, lambda who: stack.auth(f"acme:{who}"), "acme")
    await check_no_echo(stack.api, lambda who: stack.auth(f"acme:{who}"), "acme", str(uuid.uuid4()))


async def test_wrong_method_is_405_with_allow(stack: QueryStack, seed: Seed) -> None:
    """A known path asked with another method is 405 with every allowed method; unknown paths 404."""
    await check_methods(stack.api, lambda who: stack.auth(f"acme:{who}"))


async def test_purpose_note_must_be_strict_percent_encoding(stack: QueryStack, seed: Seed) -> None:
    """A stray '%', raw non-ASCII bytes or bad UTF-8 in the note is a 400 before any reveal."""
    await check_purpose_note(stack.api, lambda who: stack.auth(f"acme:{who}"), seed.acme[1]["event_id"])
