"""The ingest app factory and its start-up and shut-down.

At start: connect to PostgreSQL and apply pending migrations, load the KEK and the receipt key,
create the sealed topic if missing, start the Kafka producer. Anything missing fails the start
with a reason (ServiceStartError). Components can be passed in (tests, the embedded mode); the
others are built from :class:`Settings`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from fastapi import FastAPI
from starlette.routing import Route

from sealtrail.core.keystore import KeyStore
from sealtrail.core.note import Ed25519Signer
from sealtrail.core.receipt import CachedEd25519Signer
from sealtrail.errors import InvalidInputError, ServiceStartError, UnavailableError
from sealtrail.infra.apikeys import Authenticator, utc_now
from sealtrail.infra.auth import AuthStore
from sealtrail.infra.auth_postgres import PostgresAuthStore
from sealtrail.infra.bus import BusPublisher, TopicSpec
from sealtrail.infra.gctune import tune_gc
from sealtrail.infra.kafka import KafkaPublisher
from sealtrail.infra.kek import TenantIndexKeys, load_kek
from sealtrail.infra.keycache import CachingKeyStore
from sealtrail.infra.keyerasures import start_listener
from sealtrail.infra.keystore_postgres import PostgresKeyStore
from sealtrail.infra.logs import configure_logging
from sealtrail.infra.pgerrors import translated
from sealtrail.infra.postgres import create_pool, migrate_url
from sealtrail.infra.problems import install_problem_handlers
from sealtrail.infra.servicekey import load_service_signer
from sealtrail.infra.settings import Settings
from services.ingest.config import IngestOptions
from services.ingest.metrics import IngestMetrics
from services.ingest.otlp.mapping import SubjectRule, parse_subject_rules
from services.ingest.otlp.receiver import TraceReceiver
from services.ingest.routes import events_endpoint, router
from services.ingest.sealer import Sealer
from services.ingest.service import Admission, IngestService
from services.ingest.traces import router as traces_router


@dataclass(frozen=True)
class IngestStores:
    """Storage supplied by an embedding process (SQLite in ``sealtrail serve``) in place of the
    PostgreSQL pool. The caller then owns the stores' lifetime, their migrations, and recording
    the receipt vkey in ``signing_keys``."""

    auth: AuthStore
    keys: KeyStore
    """The key store wrapping data keys with the same KEK as ``Settings`` names; ingest caches it,
    unless it is a :class:`~sealtrail.infra.keycache.CachingKeyStore` already (shared with the
    process's other services, so that an erasure through any of them reaches ingest at once)."""


@dataclass(frozen=True)
class IngestParts:
    """Components a caller may supply instead of having them built from settings."""

    publisher: BusPublisher | None = None
    signer: Ed25519Signer | None = None
    clock: Callable[[], datetime] = utc_now
    stores: IngestStores | None = None
    admission: Admission | None = None
    """Holds or refuses a batch before it is validated or sealed (the embedded ledger backlog)."""


def load_receipt_signer(settings: Settings) -> Ed25519Signer:
    """The receipt key from ``SEALTRAIL_SERVICE_KEY_FILE`` (a 0600 ``PRIVATE+KEY+...`` file)."""
    return load_service_signer(settings.service_key_file, what="receipt key")


def sealed_topic_spec(settings: Settings) -> TopicSpec:
    return settings.sealed_topic_spec()


async def _open_pool(settings: Settings, options: IngestOptions, stack: AsyncExitStack) -> asyncpg.Pool:
    url = settings.require_database()
    if options.migrate:
        await migrate_url(url)
    pool = await create_pool(url, min_size=min(settings.db_pool_min, 2), max_size=settings.db_pool_max,
                             application_name="sealtrail-ingest")
    stack.push_async_callback(pool.close)
    return pool


async def _start_publisher(settings: Settings, options: IngestOptions, parts: IngestParts,
                           stack: AsyncExitStack) -> BusPublisher:
    publisher = parts.publisher or KafkaPublisher(bootstrap=settings.require_kafka(),
                                                  timeout_s=options.publish_timeout_s)
    try:
        await publisher.ensure_topics([sealed_topic_spec(settings)])
        await publisher.start()
    except UnavailableError as e:
        raise ServiceStartError(f"ingest cannot start: {e}") from e
    stack.push_async_callback(publisher.stop)
    return publisher


async def publish_receipt_key(pool: asyncpg.Pool, signer: CachedEd25519Signer) -> None:
    """Record the receipt vkey in ``signing_keys`` (purpose ``receipt``) so that the query API can
    publish it with the checkpoint keys; a key already there is left as it is. ServiceStartError when
    the key is (or is named like) the erasure-receipt key a query service recorded: each service
    signs its own kind of receipt with its own key."""
    vkey = signer.vkey()
    with translated("check receipt key"):
        rows = await pool.fetch("SELECT vkey FROM signing_keys WHERE purpose = 'erasure-receipt'")
    for row in rows:
        if row["vkey"] == vkey or row["vkey"].partition("+")[0] == signer.name:
            same = "is" if row["vkey"] == vkey else "has the name of"
            raise ServiceStartError(
                f"ingest cannot start: its receipt key (SEALTRAIL_SERVICE_KEY_FILE) {same} the query service's"
                f" erasure-receipt key {signer.name!r}; give ingest its own key, made with `sealtrail admin"
                " receipt-key generate PATH --name <your-domain>/ingest`")
    with translated("publish receipt key"):
        await pool.execute(
            "INSERT INTO signing_keys (key_name, key_id, purpose, vkey) VALUES ($1, $2, 'receipt', $3)"
            " ON CONFLICT DO NOTHING", signer.name, f"{signer.key_id:08x}", signer.vkey())


async def _stores(settings: Settings, options: IngestOptions, parts: IngestParts, signer: CachedEd25519Signer,
                  stack: AsyncExitStack) -> tuple[AuthStore, KeyStore]:
    """The given stores, or PostgreSQL ones over a new pool (recording the receipt vkey there)."""
    if parts.stores is not None:
        return parts.stores.auth, parts.stores.keys
    pool = await _open_pool(settings, options, stack)
    await publish_receipt_key(pool, signer)
    auth_store = PostgresAuthStore(pool=pool)
    return auth_store, PostgresKeyStore(pool=pool, kek=load_kek(settings))


async def build_service(
    settings: Settings, options: IngestOptions, parts: IngestParts, stack: AsyncExitStack
) -> IngestService:
    """Everything ingest needs, started; ``stack`` stops it again."""
    signer = CachedEd25519Signer(parts.signer or load_receipt_signer(settings))
    kek = load_kek(settings)
    auth_store, inner = await _stores(settings, options, parts, signer, stack)
    # A cache the embedding process shares with its other services (erasures made through any of
    # them drop its keys at once) is used as it is.
    keystore = inner if isinstance(inner, CachingKeyStore) else CachingKeyStore(inner=inner,
                                                                                ttl_s=options.key_cache_ttl_s)
    if parts.stores is None:  # PostgreSQL: hear erasures made by any process at once
        await start_listener(url=settings.require_database(), cache=keystore,
                             application_name="sealtrail-ingest-keys", stack=stack)
    sealer = Sealer(keystore=keystore, index_keys=TenantIndexKeys(store=auth_store, kek=kek),
                    signer=signer, clock=parts.clock)
    publisher = await _start_publisher(settings, options, parts, stack)
    service = IngestService(
        sealer=sealer, authenticator=Authenticator(store=auth_store, cache_ttl_s=options.auth_cache_ttl_s),
        publisher=publisher, topic=settings.sealed_topic, options=options, metrics=IngestMetrics(),
        ping_db=auth_store.ping, vkey=signer.vkey(), admission=parts.admission,
    )
    service.publisher_started = True
    stack.push_async_callback(service.close)  # before the publisher stops: groups submitted get published
    return service


def subject_rules(settings: Settings) -> tuple[SubjectRule, ...]:
    """The OTLP subject rules from ``SEALTRAIL_OTLP_SUBJECT_RULES`` (docs/otlp.md)."""
    try:
        return parse_subject_rules(settings.otlp_subject_rules)
    except InvalidInputError as e:
        raise ServiceStartError(f"SEALTRAIL_OTLP_SUBJECT_RULES: {e}") from None


def create_app(
    settings: Settings, *, options: IngestOptions | None = None, parts: IngestParts | None = None
) -> FastAPI:
    """The ingest ASGI app; its lifespan starts and stops the service's dependencies."""
    opts = options or IngestOptions()
    given = parts or IngestParts()
    rules = subject_rules(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            app.state.ingest = await build_service(settings, opts, given, stack)
            app.state.traces = TraceReceiver(service=app.state.ingest, subject_rules=rules)
            if opts.tune_gc:
                tune_gc()
            yield
            app.state.ingest.publisher_started = False

    app = FastAPI(
        title="Sealtrail ingest", version="1", lifespan=lifespan,
        description="Receives batches of agent tool-call events (and OTLP trace exports, whose tool-call "
                    "spans become events), seals their payloads and publishes them to the tenant's log. "
                    "See docs/ingest.md and docs/otlp.md.",
    )
    install_problem_handlers(app)
    # POST /v1/events reaches its handler through a plain route ahead of the documented one: the same
    # answers without FastAPI's dependency solving, which costs more than sealing a one-event batch.
    app.router.routes.append(Route("/v1/events", events_endpoint(lambda: app.state.ingest), methods=["POST"]))
    app.include_router(router)
    app.include_router(traces_router)
    return app


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` and worker processes: settings from ``SEALTRAIL_*``."""
    settings = Settings()
    configure_logging(settings.log_level)
    return create_app(settings, options=IngestOptions(tune_gc=True))
