"""``sealtrail witness``: run a c2sp.org/tlog-witness witness, manage its key and its logs.

The store is named by ``--db`` (or ``SEALTRAIL_WITNESS_DB``): a ``postgresql://`` URL, or the
path of a SQLite file (default ``witness.db``).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from sealtrail.cli.serving import PORT_MAX, PORT_MIN

if TYPE_CHECKING:
    from services.witness.ports import WitnessStore

DEFAULT_WITNESS_PORT = 7380
_A = TypeVar("_A")
_T = TypeVar("_T")

witness_app = typer.Typer(help="A witness that cosigns other logs' checkpoints (c2sp.org/tlog-witness).",
                          no_args_is_help=True)
key_app = typer.Typer(help="The witness's cosigning key.", no_args_is_help=True)
log_app = typer.Typer(help="The logs this witness cosigns.", no_args_is_help=True)
witness_app.add_typer(key_app, name="key")
witness_app.add_typer(log_app, name="log")

DbOpt = Annotated[str, typer.Option(envvar="SEALTRAIL_WITNESS_DB",
                                    help="postgresql:// URL, or the path of a SQLite file")]
KeyFileOpt = Annotated[Path, typer.Option(envvar="SEALTRAIL_WITNESS_KEY_FILE",
                                          help="file holding the witness's PRIVATE+KEY string (0600)")]


def register(app: typer.Typer) -> None:
    app.add_typer(witness_app, name="witness")


async def open_store(db: str) -> WitnessStore:
    """The store ``db`` names: a PostgreSQL URL, or the path of a SQLite file."""
    if db.startswith(("postgres://", "postgresql://")):
        from services.witness.postgres import PostgresWitnessStore

        return await PostgresWitnessStore.open(db)
    from services.witness.sqlite import SqliteWitnessStore

    return await SqliteWitnessStore.open(Path(db))


@key_app.command("generate")
def generate_key(
    name: Annotated[str, typer.Option(help="the witness's name, e.g. witness.example.org/w1")],
    key_file: KeyFileOpt = Path("witness.key"),
) -> None:
    """Create the witness's Ed25519 cosigning key in a new 0600 file and print its vkey."""
    from sealtrail.cli.serving import error_exit
    from sealtrail.core.cosignature import CosignatureSigner
    from sealtrail.errors import SealtrailError
    from services.witness.config import write_key

    try:
        signer = CosignatureSigner.generate(name)
        write_key(key_file, signer)
    except SealtrailError as e:
        raise error_exit(str(e)) from None
    typer.echo(signer.verifier().vkey())


@key_app.command("vkey")
def show_vkey(key_file: KeyFileOpt = Path("witness.key")) -> None:
    """Print the vkey of the witness's key."""
    from sealtrail.cli.serving import error_exit
    from sealtrail.errors import SealtrailError
    from services.witness.config import load_key

    try:
        typer.echo(load_key(key_file).verifier().vkey())
    except SealtrailError as e:
        raise error_exit(str(e)) from None


@log_app.command("add")
def add_log(
    origin: Annotated[str, typer.Option(help="the log's checkpoint origin line")],
    vkey: Annotated[list[str], typer.Option(help="a checkpoint key of the log (repeatable)")],
    db: DbOpt = "witness.db",
) -> None:
    """Witness a log, or replace the keys of a witnessed one (its latest cosigned size is kept)."""
    from sealtrail.cli.admin import run_command
    from services.witness.config import apply_logs, check_log

    async def go() -> None:
        config = check_log(origin, vkey, "--")
        store = await open_store(db)
        try:
            await apply_logs(store, [config])
        finally:
            await store.close()

    run_command(go)
    typer.echo(f"witnessing {origin}")


@log_app.command("disable")
def disable_log(origin: Annotated[str, typer.Option(help="the log's origin line")], db: DbOpt = "witness.db") -> None:
    """Stop cosigning a log: drop its keys, keep its latest cosigned checkpoint (a log is never
    forgotten: added again from size 0, it could be cosigned in a split view). `log add` re-enables it."""
    from sealtrail.cli.admin import run_command

    async def go() -> bool:
        store = await open_store(db)
        try:
            return await store.disable_log(origin)
        finally:
            await store.close()

    if not run_command(go):
        typer.echo(f"error: no witnessed log {origin!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"disabled {origin}; its record is kept")


@log_app.command("list")
def list_logs(db: DbOpt = "witness.db") -> None:
    """Print each witnessed log: origin, latest cosigned size, keys."""
    from sealtrail.cli.admin import run_command

    async def go() -> list[tuple[str, int, tuple[str, ...]]]:
        store = await open_store(db)
        try:
            return [(r.origin, r.size, r.vkeys) for r in await store.list_logs()]
        finally:
            await store.close()

    for origin, size, vkeys in run_command(go):
        typer.echo(f"{origin}\t{size}\t{' '.join(vkeys)}")


@witness_app.command("serve")
def serve(
    key_file: KeyFileOpt = Path("witness.key"),
    db: DbOpt = "witness.db",
    logs_file: Annotated[Path | None, typer.Option(
        envvar="SEALTRAIL_WITNESS_LOGS", help="TOML file of [[log]] tables to witness (added at start)")] = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=PORT_MIN, max=PORT_MAX, help="port to listen on")] = DEFAULT_WITNESS_PORT,
) -> None:
    """Serve POST /add-checkpoint and GET /<origin hash>/checkpoint."""
    from sealtrail.cli.admin import run_command
    from sealtrail.cli.serving import AppRunner, listen
    from sealtrail.infra.logs import configure_logging
    from sealtrail.infra.settings import Settings
    from services.witness.app import create_app
    from services.witness.config import load_key, read_logs_file

    configure_logging(Settings().log_level)
    signer = run_command(_call(load_key, key_file))
    logs = run_command(_call(read_logs_file, logs_file)) if logs_file is not None else []
    sock = listen(host, port)
    app = create_app(lambda: open_store(db), signer, logs=logs)
    typer.echo(f"witness {signer.name} listening on {host}:{port}, vkey {signer.verifier().vkey()}", err=True)
    AppRunner(app, sock).run()


def _call(fn: Callable[[_A], _T], arg: _A) -> Callable[[], Coroutine[Any, Any, _T]]:
    """An async wrapper, so that run_command prints a Sealtrail error of ``fn`` as one line."""
    async def go() -> _T:
        return fn(arg)

    return go
