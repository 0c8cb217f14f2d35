"""``sealtrail verify``: check Sealtrail's evidence offline, trusting only published vkeys.

Sub-commands share one contract: exit 0 and print one line when everything verifies; otherwise
exit 1 with a one-line reason on stderr. More sources (export bundles, a live log) join this group.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from sealtrail.core.verify import TrustedKeys, VerifiedProof, verify_proof_file
from sealtrail.errors import InvalidProofError, SealtrailError

verify_app = typer.Typer(
    name="verify",
    help="Verify proofs, bundles and logs offline against published verifier keys.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Attach the ``verify`` group to the root app."""
    app.add_typer(verify_app, name="verify")


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
        when = datetime.fromtimestamp(cp.timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        line += f", cosigned by {', '.join(cp.cosigners)} at {when}"
    return line


@verify_app.command("proof")
def proof(
    proof_file: Annotated[Path, typer.Argument(metavar="FILE.tlog-proof", help="A c2sp.org/tlog-proof.")],
    entry: Annotated[Path, typer.Option("--entry", help="The entry's exact bytes (canonical JSON).")],
    vkey: Annotated[
        list[str],
        typer.Option("--vkey", help="A trusted C2SP verifier key (log or cosigner); repeat for several."),
    ],
) -> None:
    """Check that an entry is in the log, under a checkpoint signed by trusted keys."""
    data = read_input(proof_file, "proof file")
    entry_bytes = read_input(entry, "entry file")
    try:
        result = verify_proof_file(data, entry_bytes, TrustedKeys.from_vkeys(vkey))
    except SealtrailError as e:
        reason = str(e)
        if isinstance(e, InvalidProofError) and entry_bytes.endswith(b"\n"):
            reason += " (the entry file ends with a newline; it must hold the exact entry bytes)"
        raise fail(reason) from e
    typer.echo(describe(result))
