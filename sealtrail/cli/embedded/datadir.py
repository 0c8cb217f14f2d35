"""The embedded default's data directory: where everything lives, and the first run.

Layout (directory 0700, every secret file 0600, never overwritten)::

    <data dir>/sealtrail.db       SQLite: tenants, API keys, data keys, the log, read models
    <data dir>/log/               the durable local log (in place of Kafka)
    <data dir>/kek                the key-encryption key (64 hex digits)
    <data dir>/keys/receipt.key   Ed25519 key ingest signs receipts with
    <data dir>/keys/query.key     Ed25519 key the query API signs erasure receipts with
    <data dir>/keys/checkpoint-*.key, cosign-*.key   the ledger's checkpoint keys

The first run creates the files, the tenant :data:`DEFAULT_TENANT` and two API keys (an operator
and a gateway); their tokens are returned once and stored nowhere. A later run finds the tenant
and creates nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from sealtrail.core.note import generate_key
from sealtrail.core.sealing import Kek
from sealtrail.infra.apikeys import KeyAdmin
from sealtrail.infra.auth import IssuedKey, Role
from sealtrail.infra.auth_sqlite import SqliteAuthStore
from sealtrail.infra.kek import IndexKeyWrapper, load_kek, write_kek_file
from sealtrail.infra.settings import Settings
from sealtrail.infra.sqlite import SqliteDatabase, open_database

DEFAULT_TENANT = "default"
DEFAULT_PORT = 8300
DEFAULT_MAX_BACKLOG = 2500
"""Records the ledger may be behind before ingest answers 429 (``sealtrail serve --max-backlog``).

An event acknowledged at the bound is signed about 2 x bound / rate + the checkpoint interval
later; at the 3,500-5,000 events/s one process sequences on 2 vCPUs that keeps the
202-to-signed-checkpoint p99 under about 2 s (docs/embedded.md, "Backpressure")."""
DATA_DIR_ENV = "SEALTRAIL_DATA_DIR"
SEALED_TOPIC, CHECKPOINTS_TOPIC, DLQ_TOPIC = "sealtrail.sealed", "sealtrail.checkpoints", "sealtrail.dlq"
SEALED_PARTITIONS = 3
KEY_NAME = "sealtrail.local/ledger"


def default_data_dir() -> Path:
    """``$SEALTRAIL_DATA_DIR``, else ``$XDG_DATA_HOME/sealtrail``, else ``~/.local/share/sealtrail``.

    Never the working directory by default: the data directory holds the KEK and private keys,
    which in a checkout would be one ``git add .`` from a commit."""
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV])
    xdg = os.environ.get("XDG_DATA_HOME", "")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "sealtrail"
    return Path.home() / ".local" / "share" / "sealtrail"


@dataclass(frozen=True)
class DataDir:
    """Paths inside one data directory."""

    root: Path

    @property
    def db(self) -> Path:
        return self.root / "sealtrail.db"

    @property
    def log(self) -> Path:
        return self.root / "log"

    @property
    def kek(self) -> Path:
        return self.root / "kek"

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    @property
    def receipt_key(self) -> Path:
        return self.keys / "receipt.key"

    @property
    def query_key(self) -> Path:
        return self.keys / "query.key"

    def settings(self) -> Settings:
        """Settings naming this directory's KEK, receipt key and topics (the environment fills the rest)."""
        return Settings(kek_file=self.kek, service_key_file=self.receipt_key, sealed_topic=SEALED_TOPIC,
                        checkpoints_topic=CHECKPOINTS_TOPIC, dlq_topic=DLQ_TOPIC,
                        topic_partitions=SEALED_PARTITIONS, signing_key_dir=self.keys, key_name=KEY_NAME)

    def load_kek(self) -> Kek:
        return load_kek(self.settings())


@dataclass
class FirstRun:
    """What the first run created: the tenant and the tokens, shown once."""

    tenant: str
    tokens: dict[str, IssuedKey] = field(default_factory=dict)


def _write_signing_key(path: Path, name: str) -> None:
    if path.exists():
        return
    private, _ = generate_key(name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(private + "\n")
        f.flush()
        os.fsync(f.fileno())


def prepare_files(data: DataDir) -> None:
    """Create the directory (0700), the KEK and the service keys (0600) where missing."""
    data.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    data.root.chmod(0o700)
    data.keys.mkdir(exist_ok=True, mode=0o700)
    if not data.kek.exists():
        write_kek_file(data.kek)
    _write_signing_key(data.receipt_key, "sealtrail-ingest")
    _write_signing_key(data.query_key, "sealtrail-query")


async def create_tenant_and_keys(db: SqliteDatabase, kek: Kek, *, tenant: str = DEFAULT_TENANT,
                                 roles: tuple[Role, ...] = (Role.OPERATOR, Role.GATEWAY)) -> FirstRun | None:
    """On an empty database, create ``tenant`` and one key per role; None if any tenant exists."""
    admin = KeyAdmin(store=SqliteAuthStore(db=db))
    if await admin.list_tenants():
        return None
    await admin.create_tenant(tenant, kek=IndexKeyWrapper(kek=kek, tenant=tenant))
    run = FirstRun(tenant=tenant)
    for role in roles:
        label = "gateway-1" if role is Role.GATEWAY else role.value
        run.tokens[role.value] = await admin.create_key(tenant=tenant, role=role, label=label)
    return run


async def initialise(data: DataDir, *, roles: tuple[Role, ...] = (Role.OPERATOR, Role.GATEWAY)
                     ) -> FirstRun | None:
    """Prepare ``data`` for serving; on the first run return the tenant and its new tokens."""
    prepare_files(data)
    db = await open_database(data.db)
    try:
        return await create_tenant_and_keys(db, data.load_kek(), roles=roles)
    finally:
        await db.close()
