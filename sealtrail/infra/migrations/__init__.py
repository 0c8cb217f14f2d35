"""Versioned SQL migrations, one directory per database (``postgres/``, ``sqlite/``).

Files are named ``NNNN_name.sql``; versions are unique per directory, gaps are allowed. A change
to the schema is a new file in every directory, never an edit of an applied one.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from importlib import resources

from sealtrail.errors import ServiceStartError

_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load(dialect: str) -> list[Migration]:
    """The packaged migrations of ``dialect``, in version order. Versions MUST be unique."""
    found: list[Migration] = []
    for entry in resources.files(__name__).joinpath(dialect).iterdir():
        m = _MIGRATION_NAME.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda mig: mig.version)
    for before, after in itertools.pairwise(found):
        if before.version == after.version:
            raise ServiceStartError(f"two {dialect} migrations share version {after.version:04d}")
    return found
