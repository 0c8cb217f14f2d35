"""Service settings from ``SEALTRAIL_*`` environment variables.

Settings are built once in each entry point and passed down; nothing reads the environment at
import time. Secrets (the KEK, signing keys) are read from files, never from command lines, and
never appear in a repr or a log line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sealtrail.errors import ServiceStartError
from sealtrail.infra.bus import TopicSpec

SEALED_SEGMENT_MS = 3600 * 1000
"""``segment.ms`` of the sealed topic: the ledger trims it below its committed offsets
(services/ledger/trimming.py), and a broker deletes a segment's file only once it rolled, so a
sequenced record's ciphertext leaves the brokers' disks within about an hour, not seven days."""

DEFAULT_SEALED_TOPIC = "sealtrail.sealed"
DEFAULT_CHECKPOINTS_TOPIC = "sealtrail.checkpoints"
DEFAULT_DLQ_TOPIC = "sealtrail.dlq"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_ENV_PREFIX = "SEALTRAIL_"
_POSTGRES_SCHEMES = ("postgresql", "postgres")
_PORT_MAX = 65535


class Settings(BaseSettings):
    """Everything a Sealtrail service needs to find its dependencies and keys.

    A value that is not valid fails the construction with :class:`ServiceStartError`, one reason
    per variable naming it (``SEALTRAIL_LOG_LEVEL must be one of ...``); the message never
    repeats the value given, which may be a secret.
    """

    model_config = SettingsConfigDict(env_prefix=_ENV_PREFIX, extra="ignore", frozen=True)

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
    signing_key_dir: Path = Field(default_factory=lambda: default_signing_key_dir(),
                                  description="ledger checkpoint keys (0600 files)")
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
    ledger_trim_kafka: bool = Field(
        default=True, description="delete the sealed topic's records below the offsets the ledger committed"
                                  " (off for operators who replay the topic)")
    ledger_trim_interval_s: float = Field(default=30.0, gt=0, description="seconds between two trimming passes")
    erasure_rewrite: Literal["full", "plain", "off"] = Field(
        default="full", description="after an erasure on PostgreSQL: VACUUM (FULL) payloads (no trace left in its"
                                    " files), a plain VACUUM, or nothing")
    otlp_subject_rules: str = Field(
        default="user=enduser.id",
        description="OTLP spans: 'scheme=attribute' pairs naming data subjects (docs/otlp.md)")
    log_level: str = Field(default="INFO", description="one of " + ", ".join(LOG_LEVELS))
    db_pool_min: int = 2
    db_pool_max: int = 10

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as e:
            raise ServiceStartError("; ".join(_reasons(e))) from None

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)} (any case)")
        return level

    def require_database(self) -> str:
        """The PostgreSQL URL; ServiceStartError when it is unset or not a PostgreSQL URL."""
        url = self.database_url.get_secret_value()
        if not url:
            raise ServiceStartError("SEALTRAIL_DATABASE_URL is not set (see `deploy/local/up`)")
        problem = postgres_url_problem(url)
        if problem:
            raise ServiceStartError(f"SEALTRAIL_DATABASE_URL is not a valid PostgreSQL URL: {problem}")
        return url

    def sealed_topic_spec(self) -> TopicSpec:
        """How ingest, the ledger and the query service create the sealed topic when it is missing."""
        return TopicSpec(name=self.sealed_topic, partitions=self.topic_partitions, replication=self.topic_replication,
                         min_insync=self.topic_min_insync, segment_ms=SEALED_SEGMENT_MS)

    def require_kafka(self) -> str:
        if not self.kafka_bootstrap:
            raise ServiceStartError("SEALTRAIL_KAFKA_BOOTSTRAP is not set (see `deploy/local/up`)")
        return self.kafka_bootstrap


def default_signing_key_dir() -> Path:
    """Where the ledger keeps its checkpoint keys unless told: ``$XDG_STATE_HOME/sealtrail/ledger-keys``,
    else ``~/.local/state/sealtrail/ledger-keys``. Never the working directory, where a private key
    would be one ``git add .`` from a commit."""
    state = os.environ.get("XDG_STATE_HOME", "")
    base = Path(state) if state and Path(state).is_absolute() else Path.home() / ".local" / "state"
    return base / "sealtrail" / "ledger-keys"


def postgres_url_problem(url: str) -> str | None:
    """Why asyncpg would not accept ``url`` as a URL (scheme, host list, ports), or None.

    The reason quotes no part of the URL: a password with an unescaped ``/`` or ``#`` ends up in
    what looks like the host and port.
    """
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return "it cannot be parsed as a URL (an unclosed [ in the host?)"
    if parts.scheme.lower() not in _POSTGRES_SCHEMES:
        return "it must start with postgresql:// or postgres://"
    hosts = parts.netloc.rpartition("@")[2]
    for host in hosts.split(",") if hosts else []:
        port = host.rpartition("]")[2] if host.startswith("[") else host
        _, colon, number = port.rpartition(":") if ":" in port else ("", "", "")
        if colon and number and not (number.isdigit() and 1 <= int(number) <= _PORT_MAX):
            return f"a port is not a number from 1 to {_PORT_MAX} (characters in the password such as" \
                   " / # ? @ : must be percent-encoded)"
    return None


def _reasons(error: ValidationError) -> list[str]:
    """One line per invalid variable, from pydantic's errors without the values given."""
    reasons = []
    for e in error.errors(include_input=False, include_url=False):
        field = str(e["loc"][0]) if e["loc"] else ""
        msg = str(e["msg"]).removeprefix("Value error, ")
        reasons.append(f"{_ENV_PREFIX}{field.upper()}: {msg}" if field else msg)
    return reasons
