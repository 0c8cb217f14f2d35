"""The query service refuses to start without a usable erasure-receipt key, saying what to do."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from sealtrail.core.note import generate_key
from sealtrail.errors import ServiceStartError
from sealtrail.infra.settings import Settings
from services.query.app import create_app


async def _start(settings: Settings) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        pass  # pragma: no cover - the start must fail first


async def test_missing_key_file_is_named() -> None:
    """No SEALTRAIL_SERVICE_KEY_FILE: the start fails naming the setting and the command."""
    with pytest.raises(ServiceStartError, match=r"SEALTRAIL_SERVICE_KEY_FILE.*receipt-key generate"):
        await _start(Settings(database_url=SecretStr("postgresql://unused/db")))


async def test_key_readable_by_others_or_not_a_key_is_refused(tmp_path: Path) -> None:
    """A key file that group or others can read, or that holds no Ed25519 key, is refused."""
    private, _ = generate_key("query.example")
    open_file = tmp_path / "open.key"
    open_file.write_text(private)
    open_file.chmod(0o644)
    with pytest.raises(ServiceStartError, match="chmod 600"):
        await _start(Settings(service_key_file=open_file))
    junk = tmp_path / "junk.key"
    junk.write_text("not a key")
    junk.chmod(0o600)
    with pytest.raises(ServiceStartError, match="not an Ed25519"):
        await _start(Settings(service_key_file=junk))
