"""Reading the witness configuration file (``SEALTRAIL_WITNESS_CONFIG`` or ``--witness-config``)."""

from __future__ import annotations

from pathlib import Path

from sealtrail.core.witnessing import WitnessingConfig, parse_witness_config
from sealtrail.errors import InvalidInputError, ServiceStartError

WITNESS_CONFIG_ENV = "SEALTRAIL_WITNESS_CONFIG"


def load_witness_config(path: Path) -> WitnessingConfig:
    """The witnesses and quorum in ``path``; ServiceStartError naming the file and field otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ServiceStartError(f"cannot read the witness configuration {path}: "
                                f"{getattr(e, 'strerror', None) or type(e).__name__}") from e
    try:
        return parse_witness_config(text, source=str(path))
    except InvalidInputError as e:
        raise ServiceStartError(str(e)) from e
