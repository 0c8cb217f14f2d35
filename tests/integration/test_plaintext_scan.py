"""No plaintext payload or subject leaves ingest: a scan of Kafka, the broker's files, the logs and
every PostgreSQL row for markers planted in 2,000 events (DESIGN §4 and §8.5)."""

from __future__ import annotations

import logging
import re
import secrets
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from sealtrail.devstack import KafkaServer
from sealtrail.infra.auth import Role
from sealtrail.infra.logs import JsonFormatter
from tests.support.ingest import event, in_process, make_ingest, read_topic

EVENTS = 2000
BATCH = 500


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def _planted(run: str) -> tuple[list[dict[str, Any]], list[str], str]:
    """Events whose arguments, results and subjects each hold a unique marker; plus one header
    marker (headers are clear by design) that the scans MUST find, proving they see the data."""
    header_marker = f"hdr{run}"
    events, markers = [], []
    for i in range(EVENTS):
        arg, res, subj = (f"{kind}{run}n{i:05d}" for kind in ("argmark", "resmark", "subjmark"))
        markers += [arg, res, subj]
        events.append(event(agent_id=header_marker, payload={"args": {"q": arg}, "result": {"rows": [res]}},
                            subjects=[f"user:{subj}@example.com"]))
    return events, markers, header_marker


def _hits(data: bytes, run: str) -> list[bytes]:
    """Every planted marker of this run found in ``data`` (one regex pass)."""
    return re.findall(rb"(?:argmark|resmark|subjmark)" + run.encode() + rb"n\d{5}", data)


async def _database_rows(db_url: str) -> bytes:
    """Every row of every table in the database, as text and raw bytes (a pg_dump equivalent)."""
    conn = await asyncpg.connect(db_url)
    try:
        tables = [r["tablename"] for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        out = bytearray()
        for table in tables:
            for row in await conn.fetch(f'SELECT * FROM "{table}"'):
                for value in row.values():
                    out += value if isinstance(value, bytes) else str(value).encode()
                    out += b"\n"
        return bytes(out)
    finally:
        await conn.close()


def _broker_files(kafka_server: KafkaServer | None) -> bytes:
    if kafka_server is None:
        return b""
    return b"".join(p.read_bytes() for p in Path(kafka_server.datadir).rglob("*") if p.is_file())


async def test_no_marker_reaches_kafka_logs_or_postgres(
    fresh_db_url: str, kafka_bootstrap: str, kafka_server: KafkaServer | None, topic_name: str
) -> None:
    """Of 6,000 markers planted in payload arguments, results and subjects, none appears in the
    topic's raw records, the broker's data files, the service logs or any database row, while the
    clear header marker does appear in the topic and the broker files (the scans see the data)."""
    run = secrets.token_hex(4)
    events, markers, header_marker = _planted(run)
    logs = _Lines()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(logs)
    root.setLevel(logging.DEBUG)
    try:
        ingest = await make_ingest(fresh_db_url, kafka_bootstrap, topic_name, roles=[Role.GATEWAY])
        async with in_process(ingest) as client:
            for start in range(0, EVENTS, BATCH):
                resp = await client.post("/v1/events", json={"events": events[start:start + BATCH]},
                                         headers=ingest.auth("acme:gateway"))
                assert resp.status_code == 202 and len(resp.json()["accepted"]) == BATCH
            metrics = (await client.get("/metrics")).content
        raw = await read_topic(kafka_bootstrap, topic_name)
    finally:
        root.removeHandler(logs)
        root.setLevel(old_level)
    topic_bytes = b"\n".join(k + b"\t" + v for k, v in raw)
    broker = _broker_files(kafka_server)
    database = await _database_rows(fresh_db_url)
    log_bytes = "\n".join(logs.lines).encode()
    assert len(raw) == EVENTS and logs.lines and database
    assert len(set(_hits(orjson.dumps(events), run))) == len(markers) == 3 * EVENTS  # the regex works
    assert header_marker.encode() in topic_bytes
    assert kafka_server is None or header_marker.encode() in broker
    for name, data in (("topic", topic_bytes), ("broker files", broker), ("logs", log_bytes),
                       ("postgres", database), ("metrics", metrics)):
        assert _hits(data, run) == [], f"plaintext markers found in {name}"
