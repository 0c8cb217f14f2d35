"""Where test runs keep their PostgreSQL data directories."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path


def server_datadir(purpose: str) -> Path:
    """A new directory for a PostgreSQL data directory, outside pytest's base temporary directory.

    As root, the server runs as ``postgres``, which must traverse every parent of its data
    directory; ``sealtrail.devstack`` grants that (o+x) when it starts the server. pytest makes its
    base directory private again (0700) whenever a session starts, so a second test session on the
    machine would lock a running server out of its files (PANIC: could not open pg_control, every
    later test failing to connect). Directories made here are left alone by pytest; remove them
    with :func:`remove_datadir`.
    """
    return Path(tempfile.mkdtemp(prefix=f"sealtrail-test-{purpose}-"))


def remove_datadir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
