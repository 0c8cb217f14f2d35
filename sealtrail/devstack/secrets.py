"""The secrets of the local services and the local tenant's API keys, kept in the state directory.

``deploy/local/up --all`` makes them once and reuses them on every later run: the KEK, ingest's
and query's own receipt keys and the ledger's signing-key directory under ``<state>/secrets``
(directory 0700, files 0600). The local tenant's API keys, one per role, are printed by every run,
so their tokens are kept in ``<state>/secrets/tokens.json`` (0600): a development convenience that
a production deployment never has (there a token is shown once and stored nowhere).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from sealtrail.errors import ServiceStartError

ROLES = ("gateway", "investigator", "dpo", "auditor")
KEY_NAME_PREFIX = "sealtrail.local"
TOKENS = "tokens.json"


@dataclass(frozen=True, slots=True)
class Secrets:
    """Paths of the local services' secrets; each process is given only the ones it needs."""

    dir: Path
    kek: Path
    ingest_key: Path
    query_key: Path
    ledger_keys: Path

    @property
    def tokens(self) -> Path:
        return self.dir / TOKENS


def ensure_secrets(state_dir: Path) -> Secrets:
    """Create whatever secret is missing under ``state_dir/secrets``; never overwrite one."""
    from sealtrail.infra.kek import write_kek_file

    d = state_dir / "secrets"
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    d.chmod(0o700)
    secrets = Secrets(dir=d, kek=d / "kek", ingest_key=d / "ingest.key", query_key=d / "query.key",
                      ledger_keys=d / "ledger-keys")
    if not secrets.kek.exists():
        write_kek_file(secrets.kek)
    for path, service in ((secrets.ingest_key, "ingest"), (secrets.query_key, "query")):
        if not path.exists():
            _write_service_key(path, f"{KEY_NAME_PREFIX}/{service}")
    secrets.ledger_keys.mkdir(mode=0o700, exist_ok=True)
    return secrets


def _write_service_key(path: Path, name: str) -> None:
    from sealtrail.core.note import generate_key

    private, _ = generate_key(name)
    write_private(path, private + "\n", exclusive=True)


def write_private(path: Path, text: str, *, exclusive: bool = False) -> None:
    """Write ``text`` to ``path`` with mode 0600 from the start (replacing it atomically unless
    ``exclusive``, which refuses an existing file)."""
    target = path if exclusive else path.with_name(path.name + ".tmp")
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(target, flags, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    if not exclusive:
        os.replace(target, path)


def read_tokens(secrets: Secrets, tenant: str) -> dict[str, dict[str, str]]:
    """The kept ``{role: {key_id, token}}`` of ``tenant``; empty when none are kept for it."""
    try:
        kept = json.loads(secrets.tokens.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise ServiceStartError(f"cannot read {secrets.tokens}: {e}; remove it to issue new keys") from e
    if not isinstance(kept, dict) or kept.get("tenant") != tenant or not isinstance(kept.get("keys"), dict):
        return {}
    return {role: dict(v) for role, v in kept["keys"].items() if isinstance(v, dict)}


async def provision_tenant(*, db_url: str, secrets: Secrets, tenant: str) -> dict[str, str]:
    """Create ``tenant`` if missing and make sure it has an active API key of every role in
    :data:`ROLES`, reusing the kept ones; return ``{role: token}``."""
    from datetime import UTC, datetime

    from sealtrail.infra.apikeys import KeyAdmin
    from sealtrail.infra.auth import Role
    from sealtrail.infra.auth_postgres import PostgresAuthStore
    from sealtrail.infra.kek import IndexKeyWrapper, load_kek
    from sealtrail.infra.postgres import create_pool, migrate_url
    from sealtrail.infra.settings import Settings

    kek = load_kek(Settings(kek_file=secrets.kek))
    await migrate_url(db_url)
    pool = await create_pool(db_url, min_size=1, max_size=2, application_name="sealtrail-devstack")
    try:
        admin = KeyAdmin(store=PostgresAuthStore(pool=pool))
        if tenant not in {t.tenant_id for t in await admin.list_tenants()}:
            await admin.create_tenant(tenant, kek=IndexKeyWrapper(kek=kek, tenant=tenant))
        now = datetime.now(UTC)
        active = {k.key_id for k in await admin.list_keys(tenant) if k.state_at(now) == "active"}
        kept = read_tokens(secrets, tenant)
        for role in ROLES:
            if kept.get(role, {}).get("key_id") not in active:
                issued = await admin.create_key(tenant=tenant, role=Role(role), label=f"local-{role}")
                kept[role] = {"key_id": issued.key.key_id, "token": issued.token}
    finally:
        await pool.close()
    write_private(secrets.tokens, json.dumps({"tenant": tenant, "keys": kept}, indent=2) + "\n")
    return {role: kept[role]["token"] for role in ROLES}
