"""Log redaction: tokens, bearer credentials, private keys and raw 32-byte hex never get through."""

from __future__ import annotations

import io
import logging

import orjson

from sealtrail.infra.logs import REDACTED, configure_logging, redact

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
