"""A test OAuth issuer: signing keys (RSA, EC P-256, Ed25519) it can add and remove, access tokens
minted with them, and its JWKS served over HTTP on 127.0.0.1 or written to a file."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def new_key(alg: str) -> PrivateKey:
    if alg.startswith(("RS", "PS")):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(alg)


def public_jwk(key: PrivateKey, kid: str) -> dict[str, Any]:
    pub = key.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        jwk = RSAAlgorithm.to_jwk(pub, as_dict=True)
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        jwk = ECAlgorithm.to_jwk(pub, as_dict=True)
    else:
        jwk = OKPAlgorithm.to_jwk(pub, as_dict=True)
    return {**jwk, "kid": kid, "use": "sig"}


@dataclass
class TokenIssuer:
    """An authorization server's token signing side."""

    issuer: str
    audience: str
    keys: dict[str, tuple[str, PrivateKey]] = field(default_factory=dict)

    def add_key(self, kid: str, alg: str = "RS256") -> None:
        self.keys[kid] = (alg, new_key(alg))

    def remove_key(self, kid: str) -> None:
        del self.keys[kid]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [public_jwk(key, kid) for kid, (_, key) in self.keys.items()]}

    def write_jwks(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.jwks()))
        tmp.replace(path)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        base: dict[str, Any] = {"iss": self.issuer, "aud": self.audience, "sub": "agent-7", "iat": now,
                                "nbf": now, "exp": now + 300, "scope": "tools.read"}
        base.update(overrides)
        return {k: v for k, v in base.items() if v is not None}

    def mint(self, kid: str | None = None, *, key: PrivateKey | None = None, alg: str | None = None,
             **claims: Any) -> str:
        """A token signed with key ``kid`` (the first key by default), or with ``key`` under ``kid``."""
        kid = kid or next(iter(self.keys))
        key_alg, own = self.keys.get(kid, ("RS256", None))
        signer = key or own
        assert signer is not None, f"no key {kid}"
        return jwt.encode(self.claims(**claims), signer, algorithm=alg or key_alg, headers={"kid": kid})


def unsigned(claims: dict[str, Any], kid: str | None = None) -> str:
    """An ``alg: none`` token: what an attacker sends hoping the signature is not checked."""
    return jwt.encode(claims, "", algorithm="none", headers={"kid": kid} if kid else None)


class JwksServer:
    """The issuer's JWKS over HTTP on 127.0.0.1, read live from the issuer; counts the fetches.
    ``mode`` makes it misbehave: ``error`` (500), ``huge`` (a 2 MiB body), ``redirect`` (302)."""

    def __init__(self, issuer: TokenIssuer) -> None:
        self.issuer, self.fetches, self.mode = issuer, 0, "ok"
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                if outer.mode in ("error", "redirect"):
                    self.send_response(500 if outer.mode == "error" else 302)
                    self.send_header("Location", "http://127.0.0.1:1/jwks.json")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.dumps(outer.issuer.jwks()).encode()
                if outer.mode == "huge":
                    body = b'{"keys": [], "pad": "' + b"x" * (2 * 1024 * 1024) + b'"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks.json"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
