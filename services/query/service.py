"""The query service object: every component a request handler needs, built and started once.

At start: connect to PostgreSQL (applying pending migrations) unless the caller supplies its
storage as :class:`~services.query.stores.QueryStores` (the embedded default passes SQLite ones,
see :mod:`services.query.stores`), load the KEK and the service's Ed25519 key (erasure receipts),
create the sealed topic if missing and start the Kafka producer, unless a started publisher is
given (access, erasure and retention events go to the log through it). Anything missing fails
the start with a reason (ServiceStartError), and so does a service key that is one of ingest's
receipt keys, or is named like one: erasure receipts MUST NOT be signed with a key that also
signs ingest receipts (each service has its own key, DESIGN §1 and deploy/README.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta

from sealtrail.core.note import Ed25519Signer
from sealtrail.core.receipt import CachedEd25519Signer
from sealtrail.core.sealing import Kek
from sealtrail.errors import ServiceStartError, UnavailableError
from sealtrail.infra.apikeys import Authenticator, utc_now
from sealtrail.infra.bus import BusPublisher
from sealtrail.infra.emitter import EventEmitter
from sealtrail.infra.kafka import KafkaPublisher
from sealtrail.infra.kek import TenantIndexKeys, load_kek
from sealtrail.infra.keycache import CachingKeyStore
from sealtrail.infra.keyerasures import start_listener
from sealtrail.infra.keystore_postgres import PostgresKeyStore
from sealtrail.infra.postgres import create_pool, migrate_url
from sealtrail.infra.servicekey import load_service_signer
from sealtrail.infra.settings import Settings
from services.ledger.reader import LedgerReader
from services.query.config import WRITER_ID, QueryOptions
from services.query.erasure import SubjectEraser
from services.query.integrity import Disagreement
from services.query.metrics import QueryMetrics
from services.query.ports import ErasureStore
from services.query.postgres.retention import PostgresRetentionStore
from services.query.reveal import AccessRecorder, PayloadOpener
from services.query.shredder import RetentionOutcome, Shredder
from services.query.stores import QueryStores, postgres_stores

log = logging.getLogger("sealtrail.query")

ERASURE_RECEIPT_PURPOSE = "erasure-receipt"
INGEST_RECEIPT_PURPOSE = "receipt"


@dataclass(frozen=True)
class QueryParts:
    """Components a caller may supply instead of having them built from settings.

    ``stores``: the storage ports (default: PostgreSQL from ``settings.database_url``).
    ``publisher_started``: the publisher is started and stopped by its owner, not by the service.
    ``kek``: the KEK (default: loaded from settings); MUST be the one ``stores.keys`` was built with.
    """

    publisher: BusPublisher | None = None
    publisher_started: bool = False
    stores: QueryStores | None = None
    kek: Kek | None = None
    signer: Ed25519Signer | None = None
    clock: Callable[[], datetime] = utc_now


@dataclass
class QueryService:
    """The started components of one query process."""

    options: QueryOptions
    stores: QueryStores
    reader: LedgerReader
    authenticator: Authenticator
    keystore: CachingKeyStore
    index_keys: TenantIndexKeys
    opener: PayloadOpener
    access: AccessRecorder
    erasures: ErasureStore
    eraser: SubjectEraser
    shredder: Shredder
    metrics: QueryMetrics
    receipt_vkey: str
    publisher_started: bool = False

    async def ready(self) -> dict[str, bool]:
        """Whether the producer is started and the database answers."""
        return {"kafka_producer": self.publisher_started, "database": await self.stores.ping()}

    def report_inconsistent(self, tenant: str, found: Sequence[Disagreement], *, route: str) -> None:
        """Count and log every stored copy found to disagree with its signed entry (names, no values)."""
        for d in found:
            self.metrics.integrity.labels(route=route, withheld=str(d.withheld).lower()).inc()
            log.error("stored copies disagree with the signed entry: tenant %s log %s index %d, fields %s (%s)",
                      tenant, d.log_id, d.idx, ",".join(d.fields), "withheld" if d.withheld else "shown flagged")


async def _start_publisher(settings: Settings, options: QueryOptions, parts: QueryParts,
                           stack: AsyncExitStack) -> BusPublisher:
    publisher = parts.publisher or KafkaPublisher(bootstrap=settings.require_kafka(),
                                                  timeout_s=options.publish_timeout_s)
    spec = settings.sealed_topic_spec()
    try:
        await publisher.ensure_topics([spec])
        if not parts.publisher_started:
            await publisher.start()
            stack.push_async_callback(publisher.stop)
    except UnavailableError as e:
        raise ServiceStartError(f"query cannot start: {e}") from e
    return publisher


async def refuse_ingest_receipt_key(reader: LedgerReader, signer: CachedEd25519Signer) -> None:
    """ServiceStartError when ``signer`` is a receipt key ingest recorded in ``signing_keys``, or
    has the name of one. Ingest records its key when it starts, and refuses the key query records
    (:func:`services.ingest.app.publish_receipt_key`), so the check holds whichever starts first."""
    vkey = signer.vkey()
    for key in await reader.published_keys():
        if key.purpose != INGEST_RECEIPT_PURPOSE:
            continue
        if key.vkey == vkey or key.vkey.partition("+")[0] == signer.name:
            same = "is" if key.vkey == vkey else "has the name of"
            raise ServiceStartError(
                f"query cannot start: its service key (SEALTRAIL_SERVICE_KEY_FILE) {same} ingest's receipt key"
                f" {signer.name!r}; give query its own key, made with `sealtrail admin receipt-key generate"
                " PATH --name <your-domain>/query`")


async def build_service(settings: Settings, options: QueryOptions, parts: QueryParts,
                        stack: AsyncExitStack) -> QueryService:
    """Everything the query service needs, started; ``stack`` stops it again."""
    signer = CachedEd25519Signer(parts.signer or load_service_signer(settings.service_key_file,
                                                                     what="query service key"))
    kek = parts.kek or load_kek(settings)
    stores = parts.stores or await postgres_stores(settings, kek=kek, stack=stack, migrate=options.migrate)
    await refuse_ingest_receipt_key(stores.ledger, signer)
    if stores.record_service_key is not None:  # so that ingest refuses this key whichever starts first
        await stores.record_service_key(signer.name, f"{signer.key_id:08x}", signer.vkey())
    auth_store = stores.auth
    keystore = stores.keys if isinstance(stores.keys, CachingKeyStore) else CachingKeyStore(
        inner=stores.keys, ttl_s=options.key_cache_ttl_s)
    if parts.stores is None:  # PostgreSQL: hear erasures made by other query processes at once
        await start_listener(url=settings.require_database(), cache=keystore,
                             application_name="sealtrail-query-keys", stack=stack)
    index_keys = TenantIndexKeys(store=auth_store, kek=kek)
    metrics = QueryMetrics()
    publisher = await _start_publisher(settings, options, parts, stack)
    emitter = EventEmitter(keystore=keystore, publisher=publisher, topic=settings.sealed_topic,
                           writer=WRITER_ID, clock=parts.clock)
    erasures = stores.erasures
    eraser = SubjectEraser(store=erasures, keystore=keystore, index_keys=index_keys, emitter=emitter,
                           signer=signer, clear_after=timedelta(seconds=options.key_cache_ttl_s),
                           metrics=metrics, clock=parts.clock)
    return QueryService(
        options=options, stores=stores, reader=stores.ledger,
        authenticator=Authenticator(store=auth_store, cache_ttl_s=options.auth_cache_ttl_s),
        keystore=keystore, index_keys=index_keys, opener=PayloadOpener(keystore=keystore, metrics=metrics),
        access=AccessRecorder(emitter=emitter, metrics=metrics), erasures=erasures, eraser=eraser,
        shredder=Shredder(store=stores.retention, keystore=keystore, emitter=emitter, metrics=metrics,
                          clock=parts.clock),
        metrics=metrics, receipt_vkey=signer.vkey(), publisher_started=True,
    )


async def run_once_from_settings(settings: Settings, tenant: str | None = None) -> list[RetentionOutcome]:
    """One shredder pass with components built from ``settings`` (``sealtrail admin retention run``)."""
    url = settings.require_database()
    await migrate_url(url)
    kek = load_kek(settings)
    pool = await create_pool(url, min_size=1, max_size=4, application_name="sealtrail-shredder")
    publisher = KafkaPublisher(bootstrap=settings.require_kafka())
    try:
        await publisher.start()
        keystore = PostgresKeyStore(pool=pool, kek=kek)
        emitter = EventEmitter(keystore=keystore, publisher=publisher, topic=settings.sealed_topic,
                               writer=WRITER_ID)
        shredder = Shredder(store=PostgresRetentionStore(pool=pool), keystore=keystore, emitter=emitter,
                            metrics=QueryMetrics())
        return await shredder.run_once(tenant)
    finally:
        await publisher.stop()
        await pool.close()
