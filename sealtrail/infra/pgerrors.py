"""Translating asyncpg errors into :mod:`sealtrail.errors` types, for the PostgreSQL adapters.

Messages name the kind of failure and the constraint, never a value (values can be personal).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

from sealtrail.errors import ConflictError, InvalidInputError, NotFoundError, UnavailableError

# A server gone, shutting down, restarting or overloaded, and a connection it ended mid-operation:
# work that failed so may or may not have happened, and is repeated once the server answers.
UNREACHABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    # A connection whose session the server ended mid-operation can be left in a state the
    # driver refuses ("cannot switch to state ..."): it is broken, like a closed one.
    asyncpg.InternalClientError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,  # the server is shutting down ("terminating connection")
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
)


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Run a block of driver calls; re-raise driver errors as Sealtrail errors (``raise from``)."""
    try:
        yield
    except asyncpg.UniqueViolationError as e:
        raise ConflictError(f"{what}: already exists ({e.constraint_name or 'unique'})") from e
    except asyncpg.ForeignKeyViolationError as e:
        raise NotFoundError(f"{what}: a referenced row does not exist ({e.constraint_name})") from e
    except (asyncpg.CheckViolationError, asyncpg.NotNullViolationError) as e:
        raise InvalidInputError(f"{what}: rejected by {e.constraint_name or 'a constraint'}") from e
    except (asyncpg.CharacterNotInRepertoireError, asyncpg.UntranslatableCharacterError) as e:
        raise InvalidInputError(f"{what}: text holds a character PostgreSQL cannot store (such as NUL)") from e
    except UNREACHABLE as e:
        raise UnavailableError(f"PostgreSQL unavailable during {what}: {type(e).__name__}",
                               retry_after=2.0) from e
