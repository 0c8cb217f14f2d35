"""Service settings from ``SEALTRAIL_*`` environment variables.

Settings are built once in each entry point and passed down; nothing reads the environment at
import time. Secrets (the KEK, signing keys) are read from files, never from command lines, and
never appear in a repr or a log line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SEALED_TOPIC = "sealtrail.sealed"
DEFAULT_CHECKPOINTS_TOPIC = "sealtrail.checkpoints"
DEFAULT_DLQ_TOPIC = "sealtrail.dlq"


class Settings(BaseSettings):
    """Everything a Sealtrail service needs to find its dependencies and keys."""

    model_config = SettingsConfigDict(env_prefix="SEALTRAIL_", extra="ignore", frozen=True)

    database_url: SecretStr = Field(default=SecretStr(""), description="PostgreSQL URL (asyncpg)")
    kafka_bootstrap: str = Field(default="", description="Kafka bootstrap.servers")
    sealed_topic: str = DEFAULT_SEALED_TOPIC
    checkpoints_topic: str = DEFAULT_CHECKPOINTS_TOPIC
    dlq_topic: str = DEFAULT_DLQ_TOPIC
    topic_partitions: int = Field(default=12, ge=1)
    topic_replication: int = Field(default=1, ge=1)
    topic_min_insync: int = Field(default=1, ge=1)
    kek_file: Path | None = None
    kek: SecretStr | None = Field(default=None, description="hex KEK; prefer kek_file")
    service_key_file: Path | None = Field(default=None, description="ingest receipt signing key")
    signing_key_dir: Path = Field(default=Path("keys"), description="ledger checkpoint keys (0600 files)")
    key_name: str = Field(default="sealtrail.local/ledger", description="checkpoint signing key name")
    origin_prefix: str = Field(default="sealtrail.local/log", description="checkpoint origin = prefix/log")
    ledger_group: str = "sealtrail-ledger"
    ledger_instance_id: str | None = Field(
        default=None, description="static group membership id (e.g. the pod name): fast restarts")
    checkpoint_interval_s: float = Field(default=1.0, gt=0)
    ledger_fetch_min_bytes: int = Field(
        default=1024 * 1024, ge=1,
        description="bytes the broker gathers for a ledger fetch before answering (or 100 ms pass)")
    ledger_lookup_duplicates: Literal["always", "after_conflict"] = Field(
        default="after_conflict",
        description="look every poll's event ids up before sequencing, or only for a while after a commit"
                    " was refused for a repeated event id")
    log_level: str = "INFO"
    db_pool_min: int = 2
    db_pool_max: int = 10

    def require_database(self) -> str:
        url = self.database_url.get_secret_value()
        if not url:
            from sealtrail.errors import ServiceStartError

            raise ServiceStartError("SEALTRAIL_DATABASE_URL is not set (see `deploy/local/up`)")
        return url

    def require_kafka(self) -> str:
        if not self.kafka_bootstrap:
            from sealtrail.errors import ServiceStartError

            raise ServiceStartError("SEALTRAIL_KAFKA_BOOTSTRAP is not set (see `deploy/local/up`)")
        return self.kafka_bootstrap
