"""``export_bundle`` and ``sealtrail export``: a bundle appears only when complete, at a path that names its form."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from sealtrail import cli
from sealtrail.audit import audit_bundle, audit_live, export_bundle
from sealtrail.errors import InvalidInputError, PermissionDeniedError, VerificationError
from tests.unit.test_audit import ORIGIN, Log


class FakeQueryApi:
    """The auditor's routes of the query API for one log ``acme``; entries may be refused with 403."""

    def __init__(self, log: Log, *, refuse_entries: bool = False) -> None:
        self.log, self.refuse_entries, self.requests = log, refuse_entries, 0
        self.keys = log.published()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        path, size = request.url.path, len(self.log.entries)
        if path == "/v1/keys":
            return httpx.Response(200, json={"keys": self.keys})
        if path == "/v1/logs":
            return httpx.Response(200, json={"logs": [{"log": "acme", "origin": ORIGIN}]})
        if path == "/v1/logs/acme/checkpoints":
            return httpx.Response(200, json={"checkpoints": [{"note": self.log.note(size)}], "next": None})
        if path == "/v1/logs/acme/entries" and self.refuse_entries:
            return httpx.Response(403, json={"title": "Forbidden", "detail": "role gateway reads proofs"})
        if path == "/v1/logs/acme/entries":
            start, end = int(request.url.params["start"]), int(request.url.params["end"])
            rows = [{"index": e.index, "entry": base64.b64encode(e.entry).decode(),
                     "chain": base64.b64encode(e.chain).decode(), "payload_digest": e.payload_digest}
                    for e in self.log.audit_entries()[start:end]]
            return httpx.Response(200, json={"entries": rows})
        return httpx.Response(404, json={"detail": "no route"})


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def _http(api: FakeQueryApi) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url="http://q", transport=httpx.MockTransport(api))


@pytest.mark.parametrize("name", ["b", "b.tar", "b.tar.gz", "b.tgz"])
async def test_a_failed_export_leaves_nothing_and_a_retry_succeeds(tmp_path: Path, name: str) -> None:
    """Entries refused half-way: no file or directory at the output, no temporary left; the retry writes it."""
    out = tmp_path / name
    async with _http(FakeQueryApi(Log(12), refuse_entries=True)) as http:
        with pytest.raises(PermissionDeniedError):
            await export_bundle(http, "acme", out)
    assert _names(tmp_path) == []
    async with _http(FakeQueryApi(Log(12))) as http:
        meta = await export_bundle(http, "acme", out)
    assert meta.size == 12 and _names(tmp_path) == [name]
    assert audit_bundle(out).entries == 12


@pytest.mark.parametrize("name", ["x.zip", "bundle.json"])
async def test_an_output_suffix_that_is_no_bundle_form_is_refused_before_any_request(tmp_path: Path,
                                                                                    name: str) -> None:
    """--out x.zip would have become a directory named x.zip: refused, naming the accepted forms."""
    api = FakeQueryApi(Log(3))
    async with _http(api) as http:
        with pytest.raises(InvalidInputError, match=r"\.tar, \.tar\.gz or \.tgz"):
            await export_bundle(http, "acme", tmp_path / name)
    assert api.requests == 0 and _names(tmp_path) == []


async def test_a_missing_parent_directory_is_named(tmp_path: Path) -> None:
    """The output's directory must exist; the error names it."""
    async with _http(FakeQueryApi(Log(3))) as http:
        with pytest.raises(InvalidInputError, match="does not exist"):
            await export_bundle(http, "acme", tmp_path / "nodir" / "b.tar")


async def test_pinning_a_windowed_checkpoint_key_alone_says_to_pin_the_cosign_key() -> None:
    """The checkpoint key has a window and no cosign key is pinned: the reason says to add it."""
    log = Log(6)
    api = FakeQueryApi(log)
    api.keys = [{**k, "not_before": 1_600_000_000} if k["purpose"] == "checkpoint" else k
                for k in api.keys]
    checkpoint_vkey = str(api.keys[0]["vkey"])
    async with _http(api) as http:
        with pytest.raises(VerificationError, match="also pin the log's cosign key"):
            await audit_live(http, "acme", pinned_vkeys=[checkpoint_vkey])
        cosign_vkey = str(api.keys[1]["vkey"])
        report = await audit_live(http, "acme", pinned_vkeys=[checkpoint_vkey, cosign_vkey])
    assert report.entries == 6


def test_verify_bundle_on_a_directory_that_is_no_bundle_is_one_line(tmp_path: Path) -> None:
    """An empty directory, or one holding only bundle.json: exit 1 with one line naming what is missing."""
    cli._register()
    (tmp_path / "empty").mkdir()
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "bundle.json").write_text(
        '{"format": "sealtrail.dev/export-bundle/v1", "log": "acme", "origin": "o", "size": 1}')
    for name, missing in (("empty", "bundle.json"), ("half", "keys.json")):
        result = CliRunner().invoke(cli.app, ["verify", "bundle", str(tmp_path / name)])
        assert result.exit_code == 1, result.output
        assert result.stderr.count("\n") == 1 and f"no readable {missing}" in result.stderr
        assert result.stderr.startswith("verification failed: ")


def test_export_cli_refuses_a_zip_with_one_line(tmp_path: Path) -> None:
    """`sealtrail export --out x.zip` exits 1 with one line and writes nothing."""
    cli._register()
    result = CliRunner().invoke(cli.app, ["export", "--url", "http://127.0.0.1:9", "--log", "acme",
                                          "--token", "t", "--out", str(tmp_path / "x.zip")])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1 and ".tgz" in result.stderr
    assert list(tmp_path.iterdir()) == []
