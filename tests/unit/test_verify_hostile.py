"""``sealtrail verify`` on hostile input: one line and exit 1, never a traceback, hang or blow-up.

Bundles are written honestly, then one file is edited the way the reviewer did (review-f)."""

from __future__ import annotations

import base64
import io
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from sealtrail import cli
from sealtrail.audit import audit_live, bundle
from sealtrail.audit.bundle import CHECKPOINTS, ENTRIES, KEYS, META, BundleMeta, BundleWriter
from sealtrail.core import merkle
from sealtrail.core.tlogproof import format_proof
from sealtrail.errors import VerificationError
from tests.unit.logbuilder import SmallLog
from tests.unit.test_audit import ORIGIN, Log
from tests.unit.test_audit_export import FakeQueryApi

Edit = Callable[[dict[str, Any]], None]


def _bundle(out: Path, log: Log | None = None) -> Path:
    log = log or Log(6)
    writer = BundleWriter(out)
    writer.write_header(BundleMeta("acme", ORIGIN, len(log.entries), ""), log.published(),
                        [log.note(len(log.entries))])
    writer.write_entries(log.audit_entries())
    writer.close()
    return out


def _edit_json(path: Path, edit: Callable[[Any], Any]) -> None:
    path.write_bytes(orjson.dumps(edit(orjson.loads(path.read_bytes()))))


def _edit_line(path: Path, n: int, edit: Edit) -> None:
    lines = path.read_bytes().splitlines()
    row = orjson.loads(lines[n])
    edit(row)
    lines[n] = orjson.dumps(row)
    path.write_bytes(b"\n".join(lines) + b"\n")


def _verify(path: Path, *pins: str) -> str:
    """Run `sealtrail verify bundle`; assert exit 1 with one `verification failed:` line; return it."""
    cli._register()
    args = ["verify", "bundle", str(path)]
    for pin in pins:
        args += ["--vkey", pin]
    result = CliRunner().invoke(cli.app, args)
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1 and result.stdout == "", result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("verification failed: "), result.stderr
    return result.stderr


@pytest.mark.parametrize(("edit", "reason"), [
    (lambda k: [*k, "x"], "published key 3 is not an object"),
    (lambda k: [{**x, "not_before": "0"} for x in k], "must be null or integers"),
    (lambda k: [*k, {"purpose": "checkpoint"}], "published key 3 has no vkey string"),
])
def test_malformed_keys_json_is_one_line(tmp_path: Path, edit: Callable[[Any], Any], reason: str) -> None:
    """A keys.json element that is no object, a bound that is a string, a key without vkey."""
    path = _bundle(tmp_path / "b")
    _edit_json(path / KEYS, edit)
    assert reason in _verify(path)


@pytest.mark.parametrize(("edit", "reason"), [
    (lambda e: e.update(payload_digest=5), "payload_digest must be a string or null"),
    (lambda e: e.update(index=True), "index is not a non-negative integer"),
    (lambda e: e.update(index=2.0), "index is not a non-negative integer"),
    (lambda e: e.update(entry="!!" + e["entry"]), "not valid base64"),
    (lambda e: e.update(chain=None), "entry and chain must be base64 strings"),
])
def test_malformed_entry_lines_are_refused_by_line(tmp_path: Path, edit: Edit, reason: str) -> None:
    """Entry line 3 with a digest that is a number, an index of true or 2.0, base64 with junk
    characters (which lenient decoding would skip) or no chain: refused, naming the line."""
    path = _bundle(tmp_path / "b")
    _edit_line(path / ENTRIES, 2, edit)
    line = _verify(path)
    assert "entries.jsonl line 3 is malformed" in line and reason in line


@pytest.mark.parametrize("size", ["6", 6.0, 5.9, True])
def test_a_size_that_is_no_integer_is_refused(tmp_path: Path, size: object) -> None:
    """bundle.json size "6" or 6.0 would have passed int(); both are refused."""
    path = _bundle(tmp_path / "b")
    _edit_json(path / META, lambda m: {**m, "size": size})
    assert "an integer size" in _verify(path)


@pytest.mark.parametrize(("field", "value"), [("key_ids", 5), ("erased_key_ids", 5), ("erased_key_ids", "c")])
def test_signed_entries_with_malformed_key_lists_are_refused(tmp_path: Path, field: str, value: object) -> None:
    """A signed entry whose key_ids (payload missing) or an erasure whose erased_key_ids is not a
    list of strings fails naming the entry, instead of crashing or reading a string's letters."""
    extra = {"type": "erasure", field: value} if field == "erased_key_ids" else {"type": "tool_call", field: value}
    log = Log(4, [extra])
    if field == "key_ids":
        log.headers[4] = {**log.headers[4], "key_ids": value}
        log = _relog(log)
        log.present.pop(4)
    else:
        log.present.pop(0)
    assert f"entry 4: {field} is not a list of strings" in _verify(_bundle(tmp_path / "b", log))


def _relog(log: Log) -> Log:
    """``log`` with its entries rebuilt from its (edited) headers and checkpoints over them."""
    from sealtrail.core.canonical import canonical_json
    from sealtrail.core.chain import chain_fold, chain_seed

    log.entries = [canonical_json(h) for h in log.headers]
    log.chains = chain_fold(chain_seed(ORIGIN), merkle.leaf_hashes(log.entries))
    log.store = merkle.MemoryNodeStore()
    log.store.add_runs(merkle.CompactRange().extend(merkle.leaf_hashes(log.entries)))
    return log


def test_a_nested_payload_digest_is_not_the_entrys(tmp_path: Path) -> None:
    """An entry with a nested "payload_digest" sorting before its own: only the top-level digest
    counts (the reviewer's t7.py accepted the nested one)."""
    log = Log(3)
    nested = "blake3:" + "e" * 64
    log.headers[1] = {**log.headers[1], "arguments_meta": {"payload_digest": nested}}
    log = _relog(log)
    log.present[1] = nested
    assert "stored payload of entry 1 does not have the digest" in _verify(_bundle(tmp_path / "b", log))


def _tar(out: Path, members: dict[str, bytes | tarfile.TarInfo], mode: str = "w") -> Path:
    with tarfile.open(out, mode) as tar:  # type: ignore[call-overload]
        for name, data in members.items():
            if isinstance(data, tarfile.TarInfo):
                tar.addfile(data)
            else:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return out


def _files(path: Path) -> dict[str, bytes | tarfile.TarInfo]:
    return {name: (path / name).read_bytes() for name in (META, KEYS, CHECKPOINTS, ENTRIES)}


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_tar_members_that_are_links_are_refused(tmp_path: Path, kind: bytes) -> None:
    """entries.jsonl as a symlink or hard link to a member that is not there (KeyError before)."""
    files = _files(_bundle(tmp_path / "b"))
    link = tarfile.TarInfo(ENTRIES)
    link.type, link.linkname = kind, "nope"
    files[ENTRIES] = link
    assert "entries.jsonl is not a regular file" in _verify(_tar(tmp_path / "l.tar", files))


def test_a_truncated_tar_gz_is_named_not_aborted(tmp_path: Path) -> None:
    """A .tar.gz cut in half raised EOFError, which click printed as "Aborted."."""
    whole = _tar(tmp_path / "w.tar.gz", _files(_bundle(tmp_path / "b", Log(300))), "w:gz").read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(whole[:len(whole) // 2])
    assert "cut short or corrupt" in _verify(cut)


def test_oversized_members_are_refused_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """keys.json above the member cap, in a directory or a tar (the cap lowered for the test), and
    an entries line above the line cap, are refused rather than read into memory."""
    monkeypatch.setattr(bundle, "MAX_MEMBER", 2000)
    path = _bundle(tmp_path / "b")
    (path / KEYS).write_bytes(b" " * 2001 + (path / KEYS).read_bytes())
    assert "keys.json is larger than 2000 bytes" in _verify(path)
    assert "keys.json is larger than 2000 bytes" in _verify(_tar(tmp_path / "b.tar", _files(path)))
    monkeypatch.setattr(bundle, "MAX_MEMBER", 64 << 20)
    monkeypatch.setattr(bundle, "MAX_LINE", 100)
    assert "entries.jsonl line 1 is longer than 100 bytes" in _verify(_bundle(tmp_path / "c"))


@pytest.mark.parametrize("member", [KEYS, ENTRIES])
def test_directory_members_that_are_no_regular_file_are_refused(tmp_path: Path, member: str) -> None:
    """A FIFO (which blocked forever) or a symlink to /dev/zero (which filled memory)."""
    path = _bundle(tmp_path / "b")
    (path / member).unlink()
    os.mkfifo(path / member)
    assert f"{member} is not a regular file" in _verify(path)
    (path / member).unlink()
    (path / member).symlink_to("/dev/zero")
    assert f"{member} is not a regular file" in _verify(path)


def test_a_fifo_as_the_bundle_path_is_refused(tmp_path: Path) -> None:
    """A FIFO given as the bundle blocked in tarfile.open."""
    os.mkfifo(tmp_path / "f")
    assert "neither a bundle directory nor" in _verify(tmp_path / "f")


class Hostile(FakeQueryApi):
    """The fake query API with one route's answer replaced."""

    def __init__(self, route: str, answer: httpx.Response) -> None:
        super().__init__(Log(4))
        self.route, self.answer = route, answer

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == self.route:
            return self.answer
        return super().__call__(request)


@pytest.mark.parametrize(("route", "answer", "reason"), [
    ("/v1/keys", httpx.Response(200, content=b"<html>hi</html>"), "not JSON"),
    ("/v1/keys", httpx.Response(200, json={}), "no keys list"),
    ("/v1/logs", httpx.Response(200, json={"logs": None}), "no logs list"),
    ("/v1/logs/acme/checkpoints", httpx.Response(200, json={"checkpoints": [{"note": None}]}),
     "no list of checkpoints"),
    ("/v1/logs/acme/checkpoints", httpx.Response(200, json={"checkpoints": [], "next": 0}),
     "next 0 does not advance beyond 0"),
    ("/v1/logs/acme/entries", httpx.Response(200, json={"entries": [None]}), "not an object"),
    ("/v1/logs/acme/entries", httpx.Response(200, json={"entries": [{"index": 0, "entry": "", "chain": "",
                                                                      "payload_digest": 5}]}),
     "payload_digest must be a string"),
])
async def test_malformed_live_answers_are_verification_failures(route: str, answer: httpx.Response,
                                                                reason: str) -> None:
    """Non-JSON keys, missing or null members, a checkpoint page whose `next` does not advance
    (which looped forever) and a bad entry row each fail with a reason naming the route."""
    async with httpx.AsyncClient(base_url="http://q", transport=httpx.MockTransport(Hostile(route, answer))) as http:
        with pytest.raises(VerificationError, match=f"GET {route} answered malformed JSON") as e:
            await audit_live(http, "acme")
    assert reason in str(e.value)


@pytest.mark.parametrize("timestamp", [10**12, 2**63 - 1])
def test_verify_proof_prints_a_far_future_cosigned_time(tmp_path: Path, timestamp: int) -> None:
    """A valid cosignature at 10^12 or 2^63-1 crashed the date formatting; it is printed as POSIX time."""
    log = SmallLog(4)
    proof = tmp_path / "p.tlog-proof"
    proof.write_text(format_proof(1, merkle.inclusion_proof(log.store, 1, 4), log.signed(4, timestamp=timestamp)))
    (tmp_path / "e").write_bytes(log.entries[1])
    cli._register()
    args = ["verify", "proof", str(proof), "--entry", str(tmp_path / "e")]
    for vkey in log.vkeys():
        args += ["--vkey", vkey]
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.count("\n") == 1 and f"at POSIX time {timestamp}" in result.stdout


def test_entry_rows_in_bundles_decode_strictly() -> None:
    """base64 is decoded strictly: the same row with junk characters is refused, without them read."""
    from sealtrail.core.audit import audit_entry

    row = {"index": 0, "entry": base64.b64encode(b"{}").decode(), "chain": base64.b64encode(b"c").decode(),
           "payload_digest": None}
    assert audit_entry(row).entry == b"{}"
    with pytest.raises(ValueError, match="base64"):
        audit_entry({**row, "chain": "Yw=\n="})


def test_a_stored_digest_running_past_the_entrys_is_refused() -> None:
    """A stored digest that is the entry's followed by '","type' matched the entry's text up to a
    quote; it must equal the whole digest string."""
    log = Log(3)
    log.present[1] = log.headers[1]["payload_digest"] + '","type'  # type: ignore[operator]
    with pytest.raises(VerificationError, match="stored payload of entry 1"):
        log.run()


def test_an_invalid_url_is_one_line() -> None:
    """`verify --url 'http://[::1'` raised httpx.InvalidURL out of the command."""
    cli._register()
    result = CliRunner().invoke(cli.app, ["verify", "--url", "http://[::1", "--log", "acme", "--token", "t"])
    assert isinstance(result.exception, SystemExit) and result.exit_code == 1, result.exception
    assert result.stderr.count("\n") == 1 and "is not a valid URL" in result.stderr
