"""Structured JSON logs with secrets redacted.

Every record passes :class:`RedactingFilter`, which replaces API-key secrets (``st_<id>_<secret>``
keeps only ``st_<id>_…``), ``Bearer`` credentials, Ed25519 private-key strings and KEK-looking hex
in the message, its arguments and any ``extra`` strings. Code MUST still never log tokens, keys or
payloads; the filter is the safety net, not the policy.

Records of the Kafka client repeating themselves are thinned to one per message every ten
seconds (:class:`RepeatFilter`), with the count of those held back.

A message that is a whole Python traceback (uvicorn logs one when an app fails to start) is
shortened to its last exception: type and reason for Sealtrail's own errors, whose messages are
written to be shown, and the type only for any other exception.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from datetime import UTC, datetime
from typing import Any

import orjson

REDACTED = "[redacted]"
_PATTERNS = (
    (re.compile(r"\bst_([0-9a-f]{16})_[A-Za-z0-9_-]+"), r"st_\1_" + REDACTED),
    (re.compile(r"(?i)\b(bearer)\s+[^\s\"',]+"), r"\1 " + REDACTED),
    (re.compile(r"PRIVATE\+KEY\+[^\s\"',]+"), "PRIVATE+KEY+" + REDACTED),
    # 32-byte keys in hex; digests ("blake3:<hex>", "sha256:<hex>") are not secret and stay.
    (re.compile(r"(?<![:\w])[0-9a-fA-F]{64}\b"), REDACTED),
)
# Attributes every LogRecord has; anything else came in through ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "color_message"}
_TRACEBACK = "Traceback (most recent call last):"
_OWN_ERRORS = "sealtrail.errors."


def redact(text: str) -> str:
    """``text`` with every secret-looking substring replaced."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def shorten_traceback(text: str) -> str:
    """``text``, or only its last exception if it is a formatted traceback (see the module docstring)."""
    if not text.startswith(_TRACEBACK):
        return text
    last = text.rstrip().rsplit("\n", 1)[-1]
    name, _, reason = last.partition(": ")
    if name.startswith(_OWN_ERRORS) and reason:
        return f"{name.removeprefix(_OWN_ERRORS)}: {reason}"
    return name.rsplit(".", 1)[-1]


def _redact_value(value: object) -> object:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    return value


class RedactingFilter(logging.Filter):
    """Redacts secrets from a record's message, arguments and extra fields, in place."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg = record.getMessage()
            record.args = None
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        for name, value in list(vars(record).items()):
            if name not in _STANDARD:
                setattr(record, name, _redact_value(value))
        return True


class RepeatFilter(logging.Filter):
    """Lets through one record per message template and logger every ``window_s`` seconds, for
    the loggers named (and their children); the next one let through carries ``repeated``, the
    number held back meanwhile. A Kafka client whose broker is down logs the same connection
    error thousands of times a second: tens of MB of log per outage, and most of a core.
    """

    def __init__(self, prefixes: tuple[str, ...] = ("aiokafka", "kafka"), window_s: float = 10.0,
                 clock: Any = None) -> None:
        super().__init__()
        self._prefixes = prefixes
        self._window_s = window_s
        self._clock = clock or time.monotonic
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        if not any(name == p or name.startswith(p + ".") for p in self._prefixes):
            return True
        key = (name, record.levelno, str(record.msg))
        now = self._clock()
        since, held = self._seen.get(key, (-float("inf"), 0))
        if now - since < self._window_s:
            self._seen[key] = (since, held + 1)
            return False
        if len(self._seen) > 1000:  # bounded: templates are few, but never grow without limit
            self._seen.clear()
        self._seen[key] = (now, 0)
        if held:
            record.repeated = held
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, extra fields, exception type."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": redact(shorten_traceback(record.getMessage())),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD and not name.startswith("_"):
                entry[name] = _redact_value(value)
        if record.exc_info and record.exc_info[0] is not None:
            # The type only: exception messages may quote input, and tracebacks hold locals' reprs.
            entry["exc_type"] = record.exc_info[0].__name__
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str = "INFO", *, stream: Any = None) -> logging.Handler:
    """Send every log record (uvicorn's included) as redacted JSON to ``stream`` (stderr)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RepeatFilter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn.access is left alone: uvicorn's own access_log switch decides whether it propagates.
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    return handler
