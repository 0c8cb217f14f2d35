"""What OAuth access-token validation adds to a gateway request.

Two measurements:

- ``validate``: the pure validation of one token (parse, algorithm and issuer checks, key lookup in
  an in-memory JWKS, signature, claims, scopes), per algorithm (RS256 2048-bit, ES256, EdDSA), in
  microseconds per call: every ``/mcp`` HTTP request with a token pays this once.
- ``gateway``: the same ``mcp`` client session calling ``demo__echo`` through ``sealtrail gateway``
  (Streamable HTTP, recording on, ``sealtrail serve`` as the ledger), sequentially, once with a
  gateway key and once with an access token of each algorithm (JWKS from a file), one session each,
  interleaved call by call so a change in the box's load hits every variant alike; p50/p99 per variant.

    .venv/bin/python -m bench.bench_gateway_oauth --calls 1000 --out bench/results/gateway-oauth.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.machine import describe
from services.gateway.oauth import Issuer, OAuthConfig, validate
from tests.support.gateway import agent, write_setup
from tests.support.oauth_issuer import TokenIssuer
from tests.support.serve import free_port, start_serve

ALGS = (("rsa", "RS256"), ("ec", "ES256"), ("ed", "EdDSA"))
ISSUER = "https://bench-issuer.example"
OAUTH = """
[oauth]
resource = "{resource}"
[oauth.scopes]
"tools.read" = ["demo/echo"]
[[oauth.issuers]]
issuer = "{issuer}"
jwks_file = "jwks.json"
"""


class _Keys:
    def __init__(self, jwks: dict[str, Any]) -> None:
        self.by_kid = {k["kid"]: k for k in jwks["keys"]}

    async def key(self, issuer: Issuer, kid: str | None, alg: str) -> dict[str, Any] | None:
        return self.by_kid.get(kid or "")

    async def close(self) -> None:
        return None


def _ms(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)


async def bench_validate(n: int) -> dict[str, Any]:
    resource = "https://gw.example/mcp"
    issuer = TokenIssuer(ISSUER, resource)
    for kid, alg in ALGS:
        issuer.add_key(kid, alg)
    cfg = OAuthConfig(resource=resource, issuers={ISSUER: Issuer(ISSUER, resource)}, authorization_servers=(ISSUER,),
                      scopes={"tools.read": ("demo/echo",)})
    keys, out = _Keys(issuer.jwks()), {}
    for kid, alg in ALGS:
        token = issuer.mint(kid, exp=int(time.time()) + 3600)
        for _ in range(100):
            await validate(token, cfg=cfg, keys=keys, now=time.time())
        lat = []
        for _ in range(n):
            t = time.perf_counter()
            await validate(token, cfg=cfg, keys=keys, now=time.time())
            lat.append(time.perf_counter() - t)
        out[alg] = {"calls": n, "mean_us": round(statistics.fmean(lat) * 1e6, 1),
                    "p50_us": round(_ms(lat, 0.5) * 1000, 1), "p99_us": round(_ms(lat, 0.99) * 1000, 1)}
    return out


async def _interleaved(url: str, tokens: dict[str, str], n: int) -> dict[str, list[float]]:
    """One session per variant, open together; call i of every variant runs before call i+1 of any."""
    lat: dict[str, list[float]] = {name: [] for name in tokens}
    async with contextlib.AsyncExitStack() as stack:
        clients = {name: await stack.enter_async_context(agent(url, token)) for name, token in tokens.items()}
        for c in clients.values():
            await c.call_tool("demo__echo", {"text": "warm"})
        for i in range(n):
            for name, c in clients.items():
                t = time.perf_counter()
                await c.call_tool("demo__echo", {"text": f"call {i}"})
                lat[name].append(time.perf_counter() - t)
    return lat


async def bench_gateway(n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-gwo-") as tmp:
        served = start_serve(Path(tmp) / "ledger")
        try:
            port = free_port()
            issuer = TokenIssuer(ISSUER, f"http://127.0.0.1:{port}/mcp")
            for kid, alg in ALGS:
                issuer.add_key(kid, alg)
            setup = write_setup(Path(tmp) / "gw", served, port=port,
                                extra=OAUTH.format(resource=issuer.audience, issuer=ISSUER))
            issuer.write_jwks(setup.dir / "jwks.json")
            setup.start()
            try:
                tokens = {"gateway_key": setup.key("alice"),
                          **{alg: issuer.mint(kid, sub="bench", exp=int(time.time()) + 7200) for kid, alg in ALGS}}
                lat = await _interleaved(setup.gateways[0].url, tokens, n)
            finally:
                setup.stop_all()
        finally:
            served.stop()
    key = lat["gateway_key"]
    return {name: {"calls": len(v), "p50_ms": _ms(v, 0.5), "p99_ms": _ms(v, 0.99),
                   "p50_added_ms": round(_ms(v, 0.5) - _ms(key, 0.5), 3)} for name, v in lat.items()}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--validations", type=int, default=5000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report: dict[str, Any] = {"benchmark": "gateway-oauth", "machine": describe("mcp", "PyJWT", "cryptography"),
                              "load_avg_before": list(os.getloadavg())}
    report["validate"] = await bench_validate(args.validations)
    report["load_avg_after_validate"] = list(os.getloadavg())
    report["gateway"] = await bench_gateway(args.calls)
    report["load_avg_after"] = list(os.getloadavg())
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    asyncio.run(main())
