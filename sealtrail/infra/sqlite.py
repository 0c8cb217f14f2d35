"""SQLite adapter plumbing for the embedded default: one database file and its migrations.

Durability: the journal is WAL with ``synchronous=FULL``, so a transaction is on disk when its
COMMIT returns, and a crash at any instant leaves the last committed state. A writer whose work
can be derived again from a durable source (the ledger's entries from the fsync'd local log, the
projector's read models from the entries) may ask for ``durable=False``: that transaction commits
with ``synchronous=NORMAL`` (no fsync of the WAL), so a machine crash (not a process crash) may
roll it back, atomically, together with the later ones. The next durable commit's fsync makes it
durable too, since the WAL is one file written in commit order.

Threads: ``sqlite3`` blocks, so no call runs on the event loop. Every write transaction runs on
one dedicated writer thread (in-process writers queue instead of contending for SQLite's lock);
reads run on a small pool of reader threads, each in its own transaction, so a multi-statement
read sees one snapshot. Every thread has its own connection. ``busy_timeout`` covers the rare
second process (a CLI command) that writes to the same file.

Tenant isolation: SQLite has no row-level security. The SQLite adapters enforce it in their own
queries, which name the tenant in every tenant-scoped WHERE clause; PostgreSQL enforces it in the
database as well. ``sqlite3`` errors are translated into :mod:`sealtrail.errors` types here
(:func:`translated`) and in the other SQLite adapters, nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from sealtrail.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    ServiceStartError,
    UnavailableError,
)
from sealtrail.infra.migrations import Migration, load

MIN_SQLITE_VERSION = (3, 37, 0)  # RETURNING, STRICT tables
DEFAULT_BUSY_TIMEOUT_MS = 10_000
DEFAULT_READERS = 4
DEFAULT_CACHE_KIB = 64 * 1024  # per connection; the ledger's inserts touch eight indexes of entries
# Pages the WAL may hold before a commit copies it back into the database (SQLite's default is
# 1,000, i.e. 4 MiB: under load nearly every ledger commit then checkpointed). Hot index pages are
# copied once per checkpoint, so fewer, larger checkpoints cost less; the WAL file grows to ~64 MiB.
WAL_AUTOCHECKPOINT_PAGES = 16_384
# Without a limit a WAL file keeps the largest size it ever reached; with it, a checkpoint that
# restarts the WAL truncates the file to this size. :meth:`SqliteDatabase.checkpoint_wal` (run
# periodically, off the commit path) truncates it to zero once it passed the limit.
WAL_SIZE_LIMIT_BYTES = 16 * 1024 * 1024
PERIODIC_CHECKPOINT_WAIT_MS = 200  # the writer thread (the ledger's commits) waits no longer on readers

T = TypeVar("T")
Work = Callable[[sqlite3.Connection], T]

_UNAVAILABLE = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_IOERR", "SQLITE_FULL", "SQLITE_CANTOPEN",
                "SQLITE_READONLY", "SQLITE_PROTOCOL")
# Fixed width, always UTC: text order is time order, and SQLite's date functions read it.
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_TIME_WIDTH = len("2026-01-01T00:00:00.000000Z")


def to_db_time(t: datetime) -> str:
    """A timestamp as stored in SQLite; a naive ``t`` is taken as UTC (as asyncpg does)."""
    if t.tzinfo is UTC and t.year >= 1000:  # what fromisoformat gives for "Z": the common case
        return t.isoformat(timespec="microseconds")[:-6] + "Z"
    if t.tzinfo is not None and t.utcoffset():
        t = t.astimezone(UTC)
    if t.year >= 1000:  # isoformat is ~5 times faster than strftime and the same from year 1000 on
        return t.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    return t.strftime(_TIME_FORMAT)


def from_db_time(text: str) -> datetime:
    """The aware UTC datetime of a stored timestamp."""
    if len(text) == _TIME_WIDTH and text[10] == "T" and text[-1] == "Z":
        return datetime.fromisoformat(text)  # the stored form; ~50 times faster than strptime
    return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)


def from_db_time_or_none(text: str | None) -> datetime | None:
    return None if text is None else from_db_time(text)


def db_now() -> str:
    return to_db_time(datetime.now(UTC))


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    """Run a block of driver calls; re-raise sqlite3 errors as Sealtrail errors (``raise from``).

    Messages name the kind of failure, never a value (values can be personal).
    """
    try:
        yield
    except sqlite3.IntegrityError as e:
        name = e.sqlite_errorname
        if name in ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"):
            raise ConflictError(f"{what}: already exists") from e
        if name == "SQLITE_CONSTRAINT_FOREIGNKEY":
            raise NotFoundError(f"{what}: a referenced row does not exist") from e
        raise InvalidInputError(f"{what}: rejected by a constraint ({name})") from e
    except (sqlite3.OperationalError, sqlite3.DatabaseError) as e:
        if getattr(e, "sqlite_errorname", "").startswith(_UNAVAILABLE):
            raise UnavailableError(f"SQLite unavailable during {what}: {e.sqlite_errorname}",
                                   retry_after=1.0) from e
        raise


class SqliteDatabase:
    """One SQLite database file, used from asyncio through a writer thread and reader threads."""

    def __init__(self, *, path: Path, readers: int = DEFAULT_READERS,
                 busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> None:
        if sqlite3.sqlite_version_info < MIN_SQLITE_VERSION:
            raise ServiceStartError(
                f"SQLite {sqlite3.sqlite_version} is too old; the embedded default needs "
                f"{'.'.join(map(str, MIN_SQLITE_VERSION))} or newer")
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="sqlite-reader")
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._opened_lock = threading.Lock()
        self._closed = False

    @property
    def path(self) -> Path:
        return self._path

    async def write(self, work: Work[T], *, durable: bool = True) -> T:
        """Run ``work`` in one write transaction (BEGIN IMMEDIATE) on the writer thread.

        Committed when this returns, and durable unless ``durable`` is False (then a machine
        crash may roll it back; only for work that is derived again from a durable source after
        a restart). Rolled back, and the error re-raised, when ``work`` raises. ``work`` MUST NOT
        commit or roll back itself.
        """
        if durable:
            return await self._submit(self._writer, self._in_transaction, work, "BEGIN IMMEDIATE")
        return await self._submit(self._writer, self._relaxed, work)

    async def read(self, work: Work[T]) -> T:
        """Run ``work`` in one read transaction (one snapshot) on a reader thread."""
        return await self._submit(self._readers, self._in_transaction, work, "BEGIN")

    async def migrate(self) -> list[int]:
        """Apply every pending migration, each in its own transaction; return the versions applied."""
        return await self._submit(self._writer, _migrate, load("sqlite"))

    async def truncate_wal(self) -> None:
        """Copy the WAL into the database file and truncate it (after an erasure: old frames go).

        Waits (``busy_timeout``) for readers of older snapshots; raises :class:`UnavailableError`
        if one still held the WAL, since its frames then stay (the caller's step is repeatable)."""
        if not await self._submit(self._writer, _truncate_wal, self._busy_timeout_ms, self._busy_timeout_ms):
            raise UnavailableError("SQLite WAL checkpoint blocked by a reader; the WAL was not truncated",
                                   retry_after=1.0)

    async def sync_wal(self) -> None:
        """Make every commit so far durable, the ``durable=False`` ones included: fsync the WAL
        file, on the writer thread after the writes queued before this call. Frames a checkpoint
        already moved into the database file are durable already (a checkpoint syncs the WAL
        before and the database file after)."""
        await self._submit(self._writer, _fsync_wal, self._path.with_name(self._path.name + "-wal"))

    async def checkpoint_wal(self, *, above_bytes: int = WAL_SIZE_LIMIT_BYTES) -> int:
        """Truncate the WAL when its file passed ``above_bytes``; return the bytes it shrank by.

        For a periodic task: it holds the writer thread for one checkpoint, as an automatic one does,
        and waits at most :data:`PERIODIC_CHECKPOINT_WAIT_MS` for readers of older snapshots; a
        reader still on one leaves the WAL as it is, for the next call."""
        wal = self._path.with_name(self._path.name + "-wal")
        before = wal.stat().st_size if wal.exists() else 0
        if before <= above_bytes or not await self._submit(self._writer, _truncate_wal, PERIODIC_CHECKPOINT_WAIT_MS,
                                                            self._busy_timeout_ms):
            return 0
        return before - (wal.stat().st_size if wal.exists() else 0)

    async def close(self) -> None:
        """Finish queued work and close every connection; the object is unusable afterwards."""
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._writer.shutdown, wait=True)
        await asyncio.to_thread(self._readers.shutdown, wait=True)
        with self._opened_lock:
            for conn in self._opened:
                conn.close()
            self._opened.clear()

    async def _submit(self, pool: ThreadPoolExecutor, fn: Callable[..., T], *args: object) -> T:
        if self._closed:
            raise UnavailableError("the SQLite database is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(pool, lambda: fn(self._conn(), *args))

    def _in_transaction(self, conn: sqlite3.Connection, work: Work[T], begin: str) -> T:
        conn.execute(begin)
        try:
            result = work(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    def _relaxed(self, conn: sqlite3.Connection, work: Work[T]) -> T:
        conn.execute("PRAGMA synchronous=NORMAL")
        try:
            return self._in_transaction(conn, work, "BEGIN IMMEDIATE")
        finally:
            conn.execute("PRAGMA synchronous=FULL")

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._opened_lock:
                self._opened.append(conn)
        return conn

    def _connect(self) -> sqlite3.Connection:
        self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self._path.exists():  # payloads and wrapped keys: owner only
            os.close(os.open(self._path, os.O_WRONLY | os.O_CREAT, 0o600))
        with translated("open database"):
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False,
                                   timeout=self._busy_timeout_ms / 1000)
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(f"PRAGMA cache_size=-{DEFAULT_CACHE_KIB}")
            conn.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
            conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
            conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA secure_delete=ON")  # erased key material is overwritten, not left
        if mode != "wal":
            conn.close()
            raise ServiceStartError(f"SQLite at {self._path} cannot use WAL (journal_mode={mode})")
        return conn


def _fsync_wal(_conn: sqlite3.Connection, wal: Path) -> None:
    try:
        fd = os.open(wal, os.O_RDONLY)
    except FileNotFoundError:
        return  # no WAL file: every commit is in the database file, synced by the checkpoint
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _truncate_wal(conn: sqlite3.Connection, wait_ms: int, restore_ms: int) -> bool:
    """``wal_checkpoint(TRUNCATE)``, waiting at most ``wait_ms`` for readers; False when one kept
    it from finishing."""
    with translated("checkpoint the WAL"):
        conn.execute(f"PRAGMA busy_timeout={int(wait_ms)}")
        try:
            busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        finally:
            conn.execute(f"PRAGMA busy_timeout={int(restore_ms)}")
    return not busy


def _migrate(conn: sqlite3.Connection, migrations: list[Migration]) -> list[int]:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL) STRICT")
    applied: list[int] = []
    for mig in migrations:
        if _applied(conn, mig.version):
            continue
        # executescript runs statements as they are; the script brackets its own transaction.
        script = (f"BEGIN IMMEDIATE;\n{mig.sql}\n;\nINSERT INTO schema_migrations (version, name, applied_at)"
                  f" VALUES ({mig.version}, '{mig.name}', '{db_now()}');\nCOMMIT;")
        try:
            conn.executescript(script)
        except sqlite3.Error as e:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if _applied(conn, mig.version):  # another process applied it meanwhile
                continue
            raise ServiceStartError(f"SQLite migration {mig.version:04d}_{mig.name} failed: {e}") from e
        applied.append(mig.version)
    return applied


def _applied(conn: sqlite3.Connection, version: int) -> bool:
    row = conn.execute("SELECT 1 FROM schema_migrations WHERE version = ?", (version,)).fetchone()
    return row is not None


async def open_database(path: Path, *, readers: int = DEFAULT_READERS) -> SqliteDatabase:
    """Open (creating if needed) and migrate the database at ``path``."""
    db = SqliteDatabase(path=path, readers=readers)
    try:
        await db.migrate()
    except BaseException:
        await db.close()
        raise
    return db
