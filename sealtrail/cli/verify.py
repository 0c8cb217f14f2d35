"""``sealtrail verify``: check Sealtrail's evidence offline, trusting only published vkeys.

Sources: a ``.tlog-proof`` file (``verify proof``), a live log over the query API
(``verify --url URL --log LOG``, also spelled ``verify live``), and an export bundle
(``verify bundle PATH``, written by ``sealtrail export``). They share one contract: exit 0 and
print one line when everything verifies; otherwise exit 1 with a one-line reason on stderr that
names the first bad index or checkpoint.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from sealtrail.core.quorum import WitnessPolicy
from sealtrail.core.verify import TrustedKeys, VerifiedProof, verify_proof_file
from sealtrail.errors import InvalidProofError, SealtrailError

verify_app = typer.Typer(
    name="verify",
    help="Verify proofs, bundles and logs offline against published verifier keys.",
    invoke_without_command=True,
)

URL_HELP = "Base URL of the query API, e.g. https://audit.example.org"
TOKEN_HELP = "API key with proofs:read (prefer the SEALTRAIL_TOKEN environment variable)"
PIN_HELP = "Trust only this verifier key (repeat); default: the keys the log publishes"
Url = Annotated[str, typer.Option("--url", help=URL_HELP)]
Log = Annotated[str, typer.Option("--log", help="Log id (the tenant id)")]
Token = Annotated[str, typer.Option("--token", envvar="SEALTRAIL_TOKEN", help=TOKEN_HELP)]
Pins = Annotated[list[str] | None, typer.Option("--vkey", help=PIN_HELP)]
Calls = Annotated[bool, typer.Option(
    "--calls", help="also check every call the query API shows (GET /v1/calls: index, leaf hash, header) "
                    "against the verified entries; needs a token that reads calls (investigator)")]
STATE_HELP = ("A file that keeps the latest checkpoint verified: the log must still contain it, then it is "
              "replaced by the newer one (created on first use)")
State = Annotated[Path | None, typer.Option("--state", help=STATE_HELP)]
WITNESS_HELP = ("Require cosignatures from this witness (its type 0x04 cosignature vkey); repeat for several. "
                "The latest checkpoint counts only with --quorum of them")
Witnesses = Annotated[list[str] | None, typer.Option("--witness", help=WITNESS_HELP)]
Quorum = Annotated[int | None, typer.Option("--quorum", min=1,
                                            help="How many of the --witness keys must cosign (default: all)")]


def witness_policy(witness: list[str] | None, quorum: int | None) -> WitnessPolicy | None:
    """The witness policy of --witness and --quorum (None without --witness); one line and exit 1 if bad."""
    if not witness:
        if quorum is not None:
            raise fail("--quorum needs the witnesses' keys: give each with --witness")
        return None
    try:
        return WitnessPolicy.from_vkeys(witness, quorum)
    except SealtrailError as e:
        raise fail(str(e)) from e


def register(app: typer.Typer) -> None:
    """Attach the ``verify`` group and ``export`` to the root app."""
    from sealtrail.cli.audit import export

    app.add_typer(verify_app, name="verify")
    app.command("export")(export)


@verify_app.callback()
def verify_log(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Option("--url", help=URL_HELP)] = None,
    log: Annotated[str | None, typer.Option("--log", help="Log id (the tenant id)")] = None,
    token: Annotated[str | None, typer.Option("--token", envvar="SEALTRAIL_TOKEN", help=TOKEN_HELP)] = None,
    vkey: Pins = None,
    state: State = None,
    witness: Witnesses = None,
    quorum: Quorum = None,
    calls: Calls = False,
) -> None:
    """Verify a live log (--url, --log, --token), or use a sub-command."""
    if ctx.invoked_subcommand is not None:
        return
    if url is None and log is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)
    _require(ctx, url=url, log=log, token=token)
    assert url is not None and log is not None and token is not None
    live(url=url, log=log, token=token, vkey=vkey, state=state, witness=witness, quorum=quorum, calls=calls)


class _MissingOption(typer.BadParameter):
    """A usage error (exit 2) worded like typer's own for a missing required option."""

    def format_message(self) -> str:
        return self.message


def _require(ctx: typer.Context, **given: str | None) -> None:
    """Fail like a missing required option (exit 2) for the first of ``given`` not set."""
    for name, value in given.items():
        if value is None:
            param = next(p for p in ctx.command.params if p.name == name)
            envvar = getattr(param, "envvar", None)
            raise _MissingOption(f"Missing option '--{name}'" + (f" (env var: '{envvar}')" if envvar else ""),
                                 ctx=ctx)


@verify_app.command("live")
def live(url: Url, log: Log, token: Token, vkey: Pins = None, state: State = None, witness: Witnesses = None,
         quorum: Quorum = None, calls: Calls = False) -> None:
    """Verify every entry, checkpoint and payload of a live log over the query API."""
    from sealtrail.cli.audit import run_live

    run_live(url=url, log=log, token=token, pins=vkey or [], state=state,
             witnesses=witness_policy(witness, quorum), calls=calls)


@verify_app.command("bundle")
def bundle(
    path: Annotated[Path, typer.Argument(help="A bundle directory or tar written by `sealtrail export`.")],
    vkey: Pins = None,
    state: State = None,
    witness: Witnesses = None,
    quorum: Quorum = None,
) -> None:
    """Verify an export bundle offline."""
    from sealtrail.cli.audit import run_bundle

    run_bundle(path, pins=vkey or [], state=state, witnesses=witness_policy(witness, quorum))


def fail(reason: str) -> typer.Exit:
    """Print ``reason`` as one line on stderr and return the exit-1 signal to raise."""
    typer.echo("verification failed: " + " ".join(reason.split()), err=True)
    return typer.Exit(1)


def read_input(path: Path, what: str) -> bytes:
    """Read a whole file, turning I/O errors into a one-line failure."""
    try:
        return path.read_bytes()
    except OSError as e:
        raise fail(f"cannot read {what} {path}: {e.strerror or e}") from e


def describe(result: VerifiedProof) -> str:
    """One line saying what a verified proof shows."""
    cp = result.checkpoint
    line = f"OK: entry {result.index} is in {cp.checkpoint.origin} at tree size {cp.checkpoint.size}"
    line += f", signed by {', '.join(cp.log_keys)}"
    if cp.timestamp is not None:
        line += f", cosigned by {', '.join(cp.cosigners)} at {_when(cp.timestamp)}"
    if result.witnessed_by:
        line += f", witnessed by {', '.join(result.witnessed_by)}"
    return line


def _when(timestamp: int) -> str:
    """A cosigned time as UTC, or as POSIX seconds when no calendar date has it (a cosigner may
    sign any time up to 2^63-1, c2sp.org/tlog-cosignature)."""
    try:
        return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OSError, OverflowError):
        return f"POSIX time {timestamp} (beyond the calendar)"


@verify_app.command("proof")
def proof(
    proof_file: Annotated[Path, typer.Argument(metavar="FILE.tlog-proof", help="A c2sp.org/tlog-proof.")],
    entry: Annotated[Path, typer.Option("--entry", help="The entry's exact bytes (canonical JSON).")],
    vkey: Annotated[
        list[str],
        typer.Option("--vkey", help="A trusted C2SP verifier key (log or cosigner); repeat for several."),
    ],
    origin: Annotated[str | None, typer.Option(
        "--origin", help="The log's checkpoint origin (e.g. sealtrail.local/log/acme); a proof under a checkpoint"
                         " of any other log is refused")] = None,
    witness: Witnesses = None,
    quorum: Quorum = None,
) -> None:
    """Check that an entry is in the log, under a checkpoint signed by trusted keys.

    The vkeys say who signed, not which log: a log key that signs several logs' checkpoints would
    also vouch for an entry of another log. --origin pins the one log the entry must be in."""
    witnesses = witness_policy(witness, quorum)
    data = read_input(proof_file, "proof file")
    entry_bytes = read_input(entry, "entry file")
    try:
        result = verify_proof_file(data, entry_bytes, TrustedKeys.from_vkeys(vkey), origin=origin,
                                   witnesses=witnesses)
    except SealtrailError as e:
        reason = str(e)
        if isinstance(e, InvalidProofError) and entry_bytes.endswith(b"\n"):
            reason += " (the entry file ends with a newline; it must hold the exact entry bytes)"
        raise fail(reason) from e
    typer.echo(describe(result))
