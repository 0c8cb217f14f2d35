"""The SDK with a wrong or revoked key: the final error and a warning name the answer, never the token."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from sealtrail.sdk.backoff import Backoff
from sealtrail.sdk.client import DeliveryError, SealtrailClient

TOKEN = "st_0123456789abcdef_SECRETSECRETSECRETSECRET"
FAST = Backoff(base_s=0.001, cap_s=0.001, jitter=0.0)


def _refusing(status: int, title: str, detail: str) -> httpx.MockTransport:
    def answer(_: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"type": "about:blank", "title": title, "status": status,
                                            "detail": detail}, headers={"content-type": "application/problem+json"})
    return httpx.MockTransport(answer)


@pytest.mark.parametrize(("status", "title", "detail"), [
    (401, "Unauthorized", "unknown API key"),
    (403, "Forbidden", "role investigator may not send events"),
])
async def test_a_refused_key_is_named_in_the_delivery_error_and_a_warning(
        status: int, title: str, detail: str, caplog: pytest.LogCaptureFixture) -> None:
    """After the tries run out, DeliveryError carries the status, title and detail, and says the key was refused."""
    client = SealtrailClient("http://ingest", TOKEN, attempts=2, backoff=FAST,
                             transport=_refusing(status, title, detail))
    with caplog.at_level(logging.WARNING, logger="sealtrail.sdk"), pytest.raises(DeliveryError) as e:
        async with client:
            await client.send({"event_id": "e1"})
    message = str(e.value)
    assert f"1 events were neither delivered nor spooled; last answer: HTTP {status} {title}: {detail}" in message
    assert "refused the API key" in message
    assert (e.value.status, e.value.title, e.value.detail) == (status, title, detail)
    assert any(f"HTTP {status}" in r.getMessage() and "kept in memory" in r.getMessage() for r in caplog.records)
    assert client.stats.last_problem is not None and str(status) in client.stats.last_problem
    assert "SECRET" not in message and not any("SECRET" in r.getMessage() for r in caplog.records)


async def test_a_refused_key_with_a_spool_is_logged_when_it_spools(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """With a spool the events are kept (no error), but the warning says why they were spooled."""
    client = SealtrailClient("http://ingest", TOKEN, attempts=1, backoff=FAST, spool_dir=tmp_path / "spool",
                             transport=_refusing(401, "Unauthorized", "API key is revoked"))
    with caplog.at_level(logging.WARNING, logger="sealtrail.sdk"):
        async with client:
            await client.send({"event_id": "e1"})
    assert client.stats.spooled_batches == 1
    assert any("HTTP 401 Unauthorized: API key is revoked" in r.getMessage() and "spooled" in r.getMessage()
               for r in caplog.records)


async def test_a_token_echoed_in_a_problem_is_not_repeated() -> None:
    """A server that quotes the token in its detail: the error keeps only the key id."""
    client = SealtrailClient("http://ingest", TOKEN, attempts=1, backoff=FAST,
                             transport=_refusing(401, "Unauthorized", f"unknown API key {TOKEN}"))
    with pytest.raises(DeliveryError) as e:
        async with client:
            await client.send({"event_id": "e1"})
    assert "SECRET" not in str(e.value) and "st_0123456789abcdef_" in str(e.value)


async def test_a_connection_error_is_named() -> None:
    """No answer at all: the error names the connection error and has no status."""
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = SealtrailClient("http://ingest", TOKEN, attempts=1, backoff=FAST, transport=httpx.MockTransport(refuse))
    with pytest.raises(DeliveryError, match="last answer: ConnectError") as e:
        async with client:
            await client.send({"event_id": "e1"})
    assert e.value.status is None
