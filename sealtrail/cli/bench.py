"""``sealtrail bench``: events/s and the latency from ingest's 202 to a signed checkpoint.

Without ``--url`` it measures this machine: ``sealtrail serve`` (the embedded default) starts as a
child process on a fresh temporary data directory, and its CPU time is reported per event. With
``--url`` it loads a running deployment's ingest with a gateway key and watches the query API
(``--query-url``, by default the same address, as ``sealtrail serve`` has) with an auditor or
investigator key (``--query-token``), which may read the log's entries.

Each event's latency is exact: after the run the log's new entries are read back through the
query API, each sent event id is found at its index, and its latency is the time from its 202 to
the first signed checkpoint (polled every 50 ms) that covers that index.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
import typer

from sealtrail.audit.client import LogClient, http_client
from sealtrail.cli.benchload import MAX_BATCH, AnswerCheck, Load, Sent, cpu_seconds, send
from sealtrail.core.note import Ed25519Verifier
from sealtrail.errors import BenchmarkError, SealtrailError

POLL_S = 0.05
DRAIN_TIMEOUT_S = 300.0
ENTRY_PAGE = 1000


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)


def bench(
    seconds: Annotated[float, typer.Option(min=0.5, help="how long to send")] = 20.0,
    rate: Annotated[float, typer.Option(min=0, help="events/s on a fixed schedule; 0: as fast as answered")] = 0.0,
    connections: Annotated[int, typer.Option(min=1, help="keep-alive connections sending at once")] = 2,
    batch: Annotated[int, typer.Option(min=1, max=MAX_BATCH, help="events per request")] = 500,
    event_bytes: Annotated[int, typer.Option(min=256, max=60000, help="size of one event's JSON")] = 1024,
    url: Annotated[str | None, typer.Option(help="a running ingest; without it, the embedded default")] = None,
    token: Annotated[str | None, typer.Option(envvar="SEALTRAIL_GATEWAY_TOKEN",
                                              help="gateway API key for --url")] = None,
    query_url: Annotated[str | None, typer.Option(help="the query API (default: --url)")] = None,
    query_token: Annotated[str | None, typer.Option(envvar="SEALTRAIL_TOKEN", help=(
        "an auditor or investigator key for the query API (reads the log's entries)"))] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Measure events/s and the latency from 202 to a signed checkpoint, here or on a deployment."""
    try:
        if url is None:
            report = _embedded(seconds, rate, connections, batch, event_bytes)
        else:
            if not token or not query_token:
                raise BenchmarkError("--url needs a gateway --token and an auditor or investigator --query-token "
                                     "(or SEALTRAIL_GATEWAY_TOKEN and SEALTRAIL_TOKEN)")
            load = Load(url.rstrip("/"), token, seconds, connections, batch, event_bytes, rate)
            report = asyncio.run(measure(load, (query_url or url).rstrip("/"), query_token))
            report["target"] = url
    except (SealtrailError, httpx.HTTPError, OSError) as e:
        typer.echo(f"bench failed: {type(e).__name__}: {e}", err=True)
        raise typer.Exit(1) from None
    typer.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() if as_json else _text(report))


@dataclass(frozen=True)
class _Server:
    url: str
    pid: int
    gateway: str
    auditor: str


def _embedded(seconds: float, rate: float, connections: int, batch: int, event_bytes: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sealtrail-bench-") as tmp, _serve(Path(tmp)) as server:
        load = Load(server.url, server.gateway, seconds, connections, batch, event_bytes, rate)
        cpu_before = cpu_seconds(server.pid)
        report = asyncio.run(measure(load, server.url, server.auditor))
        cpu = cpu_seconds(server.pid)
    report["target"] = "embedded default (sealtrail serve on a temporary data directory)"
    if cpu is not None and cpu_before is not None and report["accepted_events"]:
        report["server_cpu_s"] = round(cpu - cpu_before, 1)
        report["server_cpu_us_per_event"] = round((cpu - cpu_before) / report["accepted_events"] * 1e6)
    return report


@contextlib.contextmanager
def _serve(tmp: Path) -> Iterator[_Server]:
    """``sealtrail serve`` as a child process on a new data directory and a free port."""
    try:
        from sealtrail.cli.embedded.datadir import DataDir, initialise
        from sealtrail.infra.auth import Role
    except ImportError as e:
        raise BenchmarkError("measuring the embedded default needs the server extra "
                             "(pip install 'sealtrail[server]'); --url measures a deployment without it") from e

    data = DataDir(tmp / "data")
    first = asyncio.run(initialise(data, roles=(Role.GATEWAY, Role.AUDITOR)))
    if first is None:
        raise BenchmarkError(f"{data.root} was not new")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    log = tmp / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sealtrail.cli.main", "serve", "--data-dir", str(data.root),
                                 "--port", str(port)], stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log)
        yield _Server(url, proc.pid, first.tokens[Role.GATEWAY].token, first.tokens[Role.AUDITOR].token)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchmarkError(f"sealtrail serve exited with {proc.returncode}: "
                                 f"{log.read_text(errors='replace')[-1500:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        time.sleep(0.05)
    raise BenchmarkError("sealtrail serve did not answer within 60 s")


async def measure(load: Load, query_url: str, query_token: str) -> dict[str, Any]:
    """Send ``load``, wait until every accepted event is in a signed checkpoint, and report."""
    check = AnswerCheck(await receipt_verifiers(load.url), 50)
    async with http_client(query_url, query_token) as http:
        before = await _log_sizes(http)
        for log in before:  # fail now, not after the run, when the key cannot read entries
            await LogClient(http, log).entries(0, 0)
        seen: list[tuple[float, int]] = []
        async with _watching(http, check, seen) as watcher:
            started = time.perf_counter()
            sent = await send(load, check)
            if not sent.accepted:
                raise BenchmarkError(f"no request was accepted (answers: {sent.statuses})")
            if check.log is None:  # cannot happen: the first 202 is checked in full
                raise BenchmarkError("no 202 answer named its log")
            start = before.get(check.log, 0)
            index = await _indices(LogClient(http, check.log), sent, start, seen, watcher)
            drained = time.perf_counter()
    return _report(load, sent, check.log, index, seen, drained - started)


async def receipt_verifiers(url: str) -> list[Ed25519Verifier]:
    """The receipt keys ingest at ``url`` publishes (``GET /v1/keys``)."""
    async with httpx.AsyncClient(timeout=30) as client:
        resp = await client.get(url + "/v1/keys")
    if resp.status_code != 200:
        raise BenchmarkError(f"GET {url}/v1/keys answered {resp.status_code}")
    return [Ed25519Verifier.from_vkey(k["vkey"]) for k in resp.json().get("receipt", [])]


async def _log_sizes(http: httpx.AsyncClient) -> dict[str, int]:
    resp = await http.get("/v1/logs")
    if resp.status_code != 200:
        raise BenchmarkError(f"the query API answered {resp.status_code} to GET /v1/logs "
                             "(the query key must be an auditor's or an investigator's)")
    return {x["log"]: int(x["size"]) for x in resp.json()["logs"]}


@contextlib.asynccontextmanager
async def _watching(http: httpx.AsyncClient, check: AnswerCheck, seen: list[tuple[float, int]]
                    ) -> AsyncIterator[asyncio.Task[None]]:
    """Record (time, size) each time the signed size of the benchmark's log grows, until the block
    ends; the task fails when the query API refuses the query key."""
    async def watch() -> None:
        while True:
            if check.log is not None:
                resp = await http.get(f"/v1/logs/{check.log}/checkpoint")
                if resp.status_code in (401, 403):
                    raise BenchmarkError(f"the query API answered {resp.status_code} to the query key")
                if resp.status_code == 200:
                    size = int(resp.text.split("\n", 2)[1])
                    if not seen or size > seen[-1][1]:
                        seen.append((time.perf_counter(), size))
            await asyncio.sleep(POLL_S)

    task = asyncio.create_task(watch())
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)  # a failure of its own surfaced through the task


async def _indices(client: LogClient, sent: Sent, start: int, seen: list[tuple[float, int]],
                   watcher: asyncio.Task[None]) -> dict[str, int]:
    """The log index of every accepted event, read back once signed checkpoints cover them."""
    wanted = {event_id for _, ids in sent.accepted for event_id in ids}
    found: dict[str, int] = {}
    read_to = start
    deadline = time.perf_counter() + DRAIN_TIMEOUT_S
    while len(found) < len(wanted):
        signed = seen[-1][1] if seen else 0
        if signed < start + len(wanted) or signed <= read_to:
            if watcher.done():
                watcher.result()  # raises what stopped it
            if time.perf_counter() > deadline:
                raise BenchmarkError(f"{len(wanted) - len(found)} accepted events are not in a signed checkpoint "
                                     f"of log {client.log} after {DRAIN_TIMEOUT_S:.0f} s (is the query key of "
                                     "the gateway key's tenant?)")
            await asyncio.sleep(POLL_S)
            continue
        for first in range(read_to, signed, ENTRY_PAGE):
            for entry in await client.entries(first, min(first + ENTRY_PAGE, signed)):
                event_id = orjson.loads(entry.entry).get("event_id")
                if event_id in wanted:
                    found[event_id] = entry.index
        read_to = signed
    return found


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p99 and max of ``values`` (not empty), in seconds to the millisecond."""
    ordered = sorted(values)
    return {"p50": round(statistics.median(ordered), 3), "p99": round(ordered[int(0.99 * (len(ordered) - 1))], 3),
            "max": round(ordered[-1], 3)}


def _report(load: Load, sent: Sent, log: str, index: dict[str, int], seen: list[tuple[float, int]],
            drained_s: float) -> dict[str, Any]:
    latencies = _latencies(sent, index, seen)
    total = sent.accepted_events
    return {
        "log": log,
        "setup": {"seconds": load.seconds, "rate": load.rate, "connections": load.connections,
                  "batch": load.batch, "event_bytes": load.event_bytes},
        "statuses": {str(k): v for k, v in sorted(sent.statuses.items())},
        "accepted_events": total,
        "accepted_per_s": round(total / sent.seconds),
        "signed_per_s_until_drained": round(total / drained_s),
        "drain_after_sending_s": round(drained_s - sent.seconds, 1),
        "ack_to_checkpoint_s": percentiles(latencies),
        "request_s": percentiles(sent.request_s),
    }


def _latencies(sent: Sent, index: dict[str, int], seen: list[tuple[float, int]]) -> list[float]:
    out = []
    for accepted_at, ids in sent.accepted:
        for event_id in ids:
            idx = index[event_id]
            signed_at = next(t for t, size in seen if size > idx)
            out.append(max(0.0, signed_at - accepted_at))
    return out


def _text(report: dict[str, Any]) -> str:
    setup, lat = report["setup"], report["ack_to_checkpoint_s"]
    pace = f"{setup['rate']:,.0f} events/s offered" if setup["rate"] else "as fast as answered"
    lines = [
        f"sealtrail bench: {report['target']}, log {report['log']}",
        f"  {setup['connections']} connections, batches of {setup['batch']} events of ~{setup['event_bytes']} B, "
        f"{setup['seconds']:g} s, {pace}",
        f"  accepted   {report['accepted_events']:>10,} events  {report['accepted_per_s']:>8,}/s   "
        f"answers {report['statuses']}",
        f"  signed     {report['accepted_events']:>10,} events  {report['signed_per_s_until_drained']:>8,}/s   "
        "until all were in a signed checkpoint",
        f"  202 -> signed checkpoint   p50 {lat['p50']:.2f} s   p99 {lat['p99']:.2f} s   max {lat['max']:.2f} s",
    ]
    if "request_s" in report:
        req = report["request_s"]
        lines.append(f"  request (send -> answer)   p50 {req['p50'] * 1000:.1f} ms   p99 {req['p99'] * 1000:.1f} ms"
                     f"   max {req['max'] * 1000:.1f} ms")
    if "server_cpu_us_per_event" in report:
        lines.append(f"  server CPU {report['server_cpu_us_per_event']:>10,} us/event ({report['server_cpu_s']} s)")
    return "\n".join(lines)
