"""``sealtrail admin``: tenants, API keys, the KEK and the ingest receipt key.

Commands read ``SEALTRAIL_DATABASE_URL`` and the KEK (``SEALTRAIL_KEK_FILE``, or ``SEALTRAIL_KEK``
hex for development) and apply pending migrations first. With ``--data-dir D`` (or
``SEALTRAIL_DATA_DIR``) the tenant and key commands work on the embedded default's SQLite
database and KEK in ``D`` instead (``sealtrail serve`` may be running on it). A token is printed once, at creation or
rotation, and is stored nowhere. Other modules add groups under ``admin`` through
:func:`admin_group` (the ledger adds ``signing-key``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    from sealtrail.infra.apikeys import KeyAdmin
    from sealtrail.infra.auth import ApiKey, IssuedKey
    from sealtrail.infra.sqlite import SqliteDatabase

ADMIN = "admin"
_T = TypeVar("_T")

tenant_app = typer.Typer(help="Tenants (one log each).", no_args_is_help=True)
key_app = typer.Typer(help="API keys: bound to one tenant and one role, shown once.", no_args_is_help=True)
kek_app = typer.Typer(help="The key-encryption key that wraps every data key.", no_args_is_help=True)
receipt_app = typer.Typer(help="The Ed25519 key ingest signs receipts with.", no_args_is_help=True)

ROLE_HELP = "gateway|investigator|dpo|auditor|operator"
_NEW_FILE = "file to create (mode 0600, never overwritten)"
DataDirOpt = Annotated[Path | None, typer.Option(
    "--data-dir", envvar="SEALTRAIL_DATA_DIR",
    help="work on the data directory of `sealtrail serve` (SQLite) instead of PostgreSQL")]


def admin_group(app: typer.Typer) -> typer.Typer:
    """The ``admin`` group of ``app``, created on first use; add sub-groups to it."""
    for group in app.registered_groups:
        if group.name == ADMIN and group.typer_instance is not None:
            return group.typer_instance
    admin = typer.Typer(help="Tenants, API keys, KEK and signing keys.", no_args_is_help=True)
    app.add_typer(admin, name=ADMIN)
    return admin


def register(app: typer.Typer) -> None:
    admin = admin_group(app)
    admin.add_typer(tenant_app, name="tenant")
    admin.add_typer(key_app, name="key")
    admin.add_typer(kek_app, name="kek")
    admin.add_typer(receipt_app, name="receipt-key")


def run_command(work: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run one async command; print Sealtrail errors as one line and exit 1."""
    from sealtrail.errors import SealtrailError

    try:
        return asyncio.run(work())
    except SealtrailError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None


@asynccontextmanager
async def data_dir_database(data_dir: Path) -> AsyncIterator[SqliteDatabase]:
    """The database of the data directory of ``sealtrail serve``; NotFoundError when there is none."""
    from sealtrail.cli.embedded.datadir import DataDir
    from sealtrail.errors import NotFoundError
    from sealtrail.infra.sqlite import open_database

    path = DataDir(data_dir).db
    if not path.exists():
        raise NotFoundError(f"no Sealtrail database in {data_dir} (run `sealtrail serve --data-dir {data_dir}`)")
    db = await open_database(path)
    try:
        yield db
    finally:
        await db.close()


@asynccontextmanager
async def _sqlite_key_admin(data_dir: Path) -> AsyncIterator[KeyAdmin]:
    from sealtrail.infra.apikeys import KeyAdmin
    from sealtrail.infra.auth_sqlite import SqliteAuthStore

    async with data_dir_database(data_dir) as db:
        yield KeyAdmin(store=SqliteAuthStore(db=db))


@asynccontextmanager
async def _key_admin(data_dir: Path | None = None) -> AsyncIterator[KeyAdmin]:
    if data_dir is not None:
        async with _sqlite_key_admin(data_dir) as admin:
            yield admin
        return
    from sealtrail.infra.apikeys import KeyAdmin
    from sealtrail.infra.auth_postgres import PostgresAuthStore
    from sealtrail.infra.postgres import create_pool, migrate_url
    from sealtrail.infra.settings import Settings

    url = Settings().require_database()
    await migrate_url(url)
    pool = await create_pool(url, min_size=1, max_size=2, application_name="sealtrail-admin")
    try:
        yield KeyAdmin(store=PostgresAuthStore(pool=pool))
    finally:
        await pool.close()


def _key_json(key: ApiKey, token: str | None = None) -> dict[str, Any]:
    now = datetime.now(UTC)
    out: dict[str, Any] = {
        "key_id": key.key_id, "tenant": key.tenant_id, "role": key.role.value,
        "scopes": sorted(s.value for s in key.scopes), "label": key.label,
        "created_at": key.created_at.isoformat(),
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
        "state": key.state_at(now),
    }
    if token is not None:
        out["token"] = token
    return out


def _print_issued(issued: IssuedKey, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(_key_json(issued.key, issued.token)))
        return
    k = issued.key
    typer.echo(f"key_id  {k.key_id}\ntenant  {k.tenant_id}\nrole    {k.role.value}"
               f" ({', '.join(sorted(s.value for s in k.scopes))})")
    typer.echo(f"token   {issued.token}")
    typer.echo("The token is shown only now; store it in the gateway's secret store.", err=True)


def _expiry(days: float | None) -> timedelta | None:
    if days is None:
        return None
    if days <= 0:
        raise typer.BadParameter("--expires-in must be a positive number of days")
    return timedelta(days=days)


@tenant_app.command("create")
def tenant_create(name: str = typer.Argument(..., help=r"tenant id = log id: \[a-z0-9-], up to 63"),
                  data_dir: DataDirOpt = None) -> None:
    """Create a tenant with a fresh index key wrapped by the KEK."""
    from sealtrail.infra.kek import IndexKeyWrapper, load_kek
    from sealtrail.infra.settings import Settings

    async def go() -> None:
        if data_dir is None:
            kek = load_kek(Settings())
        else:
            from sealtrail.cli.embedded.datadir import DataDir
            kek = DataDir(data_dir).load_kek()
        async with _key_admin(data_dir) as admin:
            tenant = await admin.create_tenant(name, kek=IndexKeyWrapper(kek=kek, tenant=name))
        typer.echo(f"created tenant {tenant.tenant_id} (index key wrapped by KEK {tenant.kek_id})")

    run_command(go)


@tenant_app.command("list")
def tenant_list(data_dir: DataDirOpt = None) -> None:
    """Every tenant."""
    async def go() -> None:
        async with _key_admin(data_dir) as admin:
            for t in await admin.list_tenants():
                typer.echo(f"{t.tenant_id}\t{t.created_at.isoformat()}")

    run_command(go)


@key_app.command("create")
def key_create(
    tenant: str = typer.Option(..., "--tenant", help="tenant name"),
    role: str = typer.Option(..., "--role", help=ROLE_HELP),
    label: str = typer.Option("", "--label", help="identifier; a gateway key's label is its gateway_id"),
    expires_in: float | None = typer.Option(None, "--expires-in", help="days until the key expires"),
    as_json: bool = typer.Option(False, "--json", help="print a JSON object"),
    data_dir: DataDirOpt = None,
) -> None:
    """Issue an API key; its token is printed once."""
    from sealtrail.infra.auth import Role

    try:
        parsed = Role(role)
    except ValueError:
        raise typer.BadParameter(f"role must be one of {ROLE_HELP}", param_hint="--role") from None

    async def go() -> None:
        async with _key_admin(data_dir) as admin:
            issued = await admin.create_key(tenant=tenant, role=parsed, label=label,
                                            expires_in=_expiry(expires_in))
        _print_issued(issued, as_json)

    run_command(go)


@key_app.command("revoke")
def key_revoke(key_id: str = typer.Argument(...), data_dir: DataDirOpt = None) -> None:
    """Revoke a key now (ingest processes stop accepting it within their auth cache TTL, 5 s)."""

    async def go() -> None:
        async with _key_admin(data_dir) as admin:
            key = await admin.revoke_key(key_id)
        typer.echo(f"revoked {key.key_id} at {key.revoked_at.isoformat() if key.revoked_at else '?'}")

    run_command(go)


@key_app.command("rotate")
def key_rotate(
    key_id: str = typer.Argument(...),
    expires_in: float | None = typer.Option(None, "--expires-in", help="days until the new key expires"),
    as_json: bool = typer.Option(False, "--json", help="print a JSON object"),
    data_dir: DataDirOpt = None,
) -> None:
    """Issue a new key with the same tenant, role and label, and revoke the old one."""

    async def go() -> None:
        async with _key_admin(data_dir) as admin:
            issued = await admin.rotate_key(key_id, expires_in=_expiry(expires_in))
        _print_issued(issued, as_json)

    run_command(go)


@key_app.command("list")
def key_list(
    tenant: str = typer.Option(..., "--tenant"),
    as_json: bool = typer.Option(False, "--json", help="print a JSON array"),
    data_dir: DataDirOpt = None,
) -> None:
    """A tenant's keys (never their tokens)."""

    async def go() -> Sequence[ApiKey]:
        async with _key_admin(data_dir) as admin:
            return await admin.list_keys(tenant)

    keys = run_command(go)
    if as_json:
        typer.echo(json.dumps([_key_json(k) for k in keys]))
        return
    for k in keys:
        row = _key_json(k)
        typer.echo(f"{k.key_id}  {k.role.value:12} {row['state']:8} {k.label or '-':20} "
                   f"created {row['created_at']} expires {row['expires_at'] or 'never'}")


@kek_app.command("generate")
def kek_generate(path: Annotated[Path, typer.Argument(help=_NEW_FILE)]) -> None:
    """Write a new random KEK; point SEALTRAIL_KEK_FILE at it."""
    from sealtrail.errors import SealtrailError
    from sealtrail.infra.kek import write_kek_file

    try:
        kek = write_kek_file(path)
    except SealtrailError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    except OSError as e:
        raise _cannot_write(path, e) from None
    typer.echo(f"wrote KEK {kek.kek_id} to {path} (mode 0600)")


def _cannot_write(path: Path, e: OSError) -> typer.Exit:
    why = "already exists" if isinstance(e, FileExistsError) else (e.strerror or type(e).__name__).lower()
    if isinstance(e, FileNotFoundError) and not path.parent.is_dir():
        why = f"directory {path.parent} does not exist"
    typer.echo(f"error: cannot write {path}: {why}", err=True)
    return typer.Exit(1)


@receipt_app.command("generate")
def receipt_key_generate(
    path: Annotated[Path, typer.Argument(help=_NEW_FILE)],
    name: str = typer.Option("sealtrail-ingest", "--name", help="C2SP key name"),
) -> None:
    """Write a new Ed25519 receipt key; point SEALTRAIL_SERVICE_KEY_FILE at it. Prints the vkey."""
    import os

    from sealtrail.core.note import generate_key
    from sealtrail.errors import NoteError

    try:
        private, vkey = generate_key(name)
    except NoteError as e:
        typer.echo(f"error: --name {name!r}: {e}", err=True)
        raise typer.Exit(1) from None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as e:
        raise _cannot_write(path, e) from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(private + "\n")
    typer.echo(vkey)
