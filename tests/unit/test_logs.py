"""Log redaction: tokens, bearer credentials, private keys and raw 32-byte hex never get through."""

from __future__ import annotations

import io
import logging

import orjson

from sealtrail.infra.logs import REDACTED, RepeatFilter, configure_logging, redact

TOKEN = "st_0123456789abcdef_" + "Qx9" * 14 + "Z"


def test_redact_patterns() -> None:
    """Each secret shape is replaced; a digest and an event id stay readable."""
    digest = "blake3:" + "ab" * 32
    text = (f"token {TOKEN} auth 'Bearer abc.def' key PRIVATE+KEY+n+0011aabb+AQID kek={'cd' * 32} "
            f"{digest} 0190f0e8-1234-7abc-8def-0123456789ab")
    out = redact(text)
    assert "Qx9" not in out and "abc.def" not in out and "AQID" not in out and "cd" * 32 not in out
    assert f"st_0123456789abcdef_{REDACTED}" in out and digest in out and "0190f0e8-1234" in out


def test_configured_logging_redacts_messages_args_and_extras() -> None:
    """Through the configured handler, a token in the message, its %-args or an extra field
    comes out redacted, one JSON object per line."""
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging("INFO", stream=stream)
        log = logging.getLogger("sealtrail.test")
        log.info("got %s", TOKEN)
        log.info(f"direct {TOKEN}")
        log.info("extra", extra={"auth": f"Bearer {TOKEN}"})
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 3 and "Qx9" not in stream.getvalue()
    assert lines[2]["auth"].startswith("Bearer ")


def test_a_kafka_client_repeating_itself_is_thinned_with_a_count() -> None:
    """One line per message template of the Kafka client every window, carrying how many were
    held back; other loggers are never thinned."""
    now = [0.0]
    buf = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    handler = configure_logging("INFO", stream=buf)
    repeat = next(f for f in handler.filters if isinstance(f, RepeatFilter))
    handler.filters[handler.filters.index(repeat)] = RepeatFilter(window_s=10.0, clock=lambda: now[0])
    client = logging.getLogger("aiokafka.client")
    try:
        for _ in range(500):
            client.error("Unable connect to node with id %s: %s", 1, "refused")
        client.error("Unable to update metadata from [%s]", 1)
        for _ in range(3):
            logging.getLogger("sealtrail.ingest").error("kafka did not acknowledge a batch")
        now[0] = 10.5
        client.error("Unable connect to node with id %s: %s", 1, "refused")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    lines = [orjson.loads(line) for line in buf.getvalue().splitlines()]
    kafka = [line for line in lines if line["logger"] == "aiokafka.client"]
    assert [line["msg"] for line in kafka] == [
        "Unable connect to node with id 1: refused", "Unable to update metadata from [1]",
        "Unable connect to node with id 1: refused"]
    assert "repeated" not in kafka[0] and kafka[2]["repeated"] == 499
    assert sum(line["logger"] == "sealtrail.ingest" for line in lines) == 3
