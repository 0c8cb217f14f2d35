"""The native verifier (``sealtrail_native``, built by ``make install``) against the Python reference:
for the same bundle or entry pages, intact or damaged, both give the same report or the same
rejection (exception type, message and index)."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sealtrail.audit import audit_bundle, bundle
from sealtrail.audit.bundle import ENTRIES, BundleMeta, BundleWriter
from sealtrail.audit.native import ENV, NativeFeed
from sealtrail.core import merkle
from sealtrail.core.audit import AuditEntry, LogAudit, trusted_keys
from sealtrail.core.canonical import canonical_json
from sealtrail.core.chain import chain_fold, chain_seed
from sealtrail.core.checkpoint import Checkpoint
from sealtrail.core.cosignature import CosignatureSigner
from sealtrail.core.entrypage import decode_page, encode_page
from sealtrail.core.note import Ed25519Signer, sign_note
from sealtrail.errors import SealtrailError

ORIGIN = "sealtrail.example/log/native"
PERIOD, ALICE, OLD = "p" * 32, "a" * 32, "o" * 32
KEY = Ed25519Signer.generate("sealtrail.example/ledger")
CLOCK = CosignatureSigner.generate("sealtrail.example/ledger-clock")
PUBLISHED = [{"purpose": "checkpoint", "vkey": KEY.verifier().vkey(), "not_before": None, "not_after": None},
             {"purpose": "cosign", "vkey": CLOCK.verifier().vkey(), "not_before": None, "not_after": None}]
VECTORS = Path(__file__).resolve().parents[3] / "shared" / "vectors" / "rfc6962" / "reference-tree.json"
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def native() -> ModuleType:
    try:
        import sealtrail_native
    except ImportError as e:
        pytest.fail(f"the native verifier module is not built ({e}): run `make install`")
    return sealtrail_native


# kinds of entries: a usual tool call, one without a stored payload, an erasure or retention
# event, a header with a nested object, and one whose strings look like the keys the check seeks
KINDS = ["call", "call", "call", "gone", "alice", "erasure", "retention", "nested", "lookalike", "no_digest_key"]


def _header(i: int, kind: str) -> dict[str, Any]:
    h: dict[str, Any] = {"type": "tool_call", "index": i, "key_ids": [PERIOD], "payload_digest": f"blake3:{i:064x}"}
    if kind == "alice":
        h["key_ids"] = [PERIOD, ALICE]
    elif kind == "gone":
        h["key_ids"] = [OLD]
    elif kind == "erasure":
        h.update(type="erasure", erased_key_ids=[ALICE])
    elif kind == "retention":
        h.update(type="retention", period_key_id=OLD)
    elif kind == "nested":
        h["meta"] = {"payload_digest": "blake3:" + "f" * 64}
    elif kind == "lookalike":
        h["tool_name"] = '"payload_digest":"blake3:0","type":"erasure"{'
    elif kind == "no_digest_key":
        del h["payload_digest"]
    return h


class Log:
    """A log of the given kinds of entries, with checkpoints at the given sizes (and at the end)."""

    def __init__(self, kinds: list[str], sizes: list[int], *, bad_root_at: int | None = None) -> None:
        headers = [_header(i, k) for i, k in enumerate(kinds)]
        self.entries = [canonical_json(h) for h in headers]
        leaves = merkle.leaf_hashes(self.entries)
        self.chains = chain_fold(chain_seed(ORIGIN), leaves)
        self.digests: list[str | None] = [
            None if k in ("gone", "alice") else str(h.get("payload_digest", "blake3:" + "e" * 64))
            for k, h in zip(kinds, headers, strict=True)]
        n = len(kinds)
        self.notes = []
        for size in sorted({*(s for s in sizes if 0 < s <= n), n}):
            root = merkle.root_of(leaves[:size])
            if size == bad_root_at:
                root = merkle.root_of(leaves[:size - 1])
            self.notes.append(sign_note(Checkpoint(ORIGIN, size, root).body(), [KEY, CLOCK.at(1_700_000_000 + size)]))

    def audit_entries(self) -> list[AuditEntry]:
        return [AuditEntry(i, e, c, d) for i, (e, c, d) in enumerate(zip(self.entries, self.chains, self.digests,
                                                                       strict=True))]

    def bundle(self, out: Path) -> Path:
        writer = BundleWriter(out)
        writer.write_header(BundleMeta("native", ORIGIN, len(self.entries), "2026-12-07T00:00:00Z"), PUBLISHED,
                            self.notes)
        writer.write_entries(self.audit_entries())
        writer.close()
        return out

    def audit(self) -> LogAudit:
        return LogAudit(trusted_keys(PUBLISHED), ORIGIN, self.notes)


def _outcome(run: Callable[[], Any]) -> tuple[Any, ...]:
    try:
        return ("ok", run())
    except SealtrailError as e:
        return (type(e).__name__, str(e), getattr(e, "index", None))


logs = st.builds(
    lambda kinds, sizes: (kinds, sizes),
    st.lists(st.sampled_from(KINDS), min_size=1, max_size=60),
    st.lists(st.integers(1, 60), max_size=5),
)


def _damage(data: bytes, how: str, pos: int, other: int) -> bytes:
    lines = data.split(b"\n")[:-1]
    k, j = pos % len(lines), other % len(lines)
    if how == "flip":
        at = pos % len(data)
        return data[:at] + bytes([data[at] ^ (1 << (other % 8))]) + data[at + 1:]
    if how == "truncate":
        return data[:pos % len(data)]
    if how == "drop":
        del lines[k]
    elif how == "duplicate":
        lines.insert(k, lines[k])
    elif how == "swap":
        lines[k], lines[j] = lines[j], lines[k]
    elif how == "blank":
        lines.insert(k, b"")
    elif how == "garbage":
        lines.insert(k, b'{"index":' + str(k).encode() + b',"entry":"AA=="}')
    elif how == "reordered":  # valid JSON, keys in another order and spaced: only Python parses it
        row = json.loads(lines[k])
        lines[k] = json.dumps(dict(reversed(list(row.items())))).encode()
    elif how == "escaped":  # a digest written with a JSON escape: the same string
        lines[k] = lines[k].replace(b'"blake3:', b'"\\u0062lake3:')
    elif how == "padding":
        lines[k] = lines[k].replace(b'=",', b'",', 1)
    elif how == "trailing_bits":  # base64 whose unused bits are not zero: decoders differ on it
        at = lines[k].find(b'=",')
        if at > 0:
            lines[k] = lines[k][:at - 1] + bytes([lines[k][at - 1] ^ 1]) + lines[k][at:]
    elif how == "digest":
        lines[k] = lines[k].replace(b'"blake3:', b'"blake3:1', 1)
    elif how == "beyond":
        lines.append(lines[-1].replace(b'"index":', b'"index":1', 1))
    elif how == "no_newline":
        return data.rstrip(b"\n")
    return b"".join(line + b"\n" for line in lines)


DAMAGE = ["none", "flip", "flip", "truncate", "drop", "duplicate", "swap", "blank", "garbage", "reordered",
          "escaped", "padding", "trailing_bits", "digest", "beyond", "no_newline"]


def _both(monkeypatch: pytest.MonkeyPatch, run: Callable[[], Any]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    monkeypatch.setenv(ENV, "1")
    fast = _outcome(run)
    monkeypatch.setenv(ENV, "0")
    pure = _outcome(run)
    return fast, pure


@SETTINGS
@given(log=logs, how=st.sampled_from(DAMAGE), pos=st.integers(0, 1 << 30), other=st.integers(0, 1 << 30),
       chunk=st.integers(1, 9), block=st.sampled_from([7, 64, 333, 1 << 20]), bad_root=st.booleans())
def test_bundles_verify_alike_intact_or_damaged(native: ModuleType, tmp_path_factory: pytest.TempPathFactory,
                                                monkeypatch: pytest.MonkeyPatch, log: tuple[list[str], list[int]],
                                                how: str, pos: int, other: int, chunk: int, block: int,
                                                bad_root: bool) -> None:
    """A bundle, intact or damaged in one of many ways, read in chunks and blocks of many sizes:
    the native and the Python verifier give the same report or the same error."""
    kinds, sizes = log
    built = Log(kinds, sizes, bad_root_at=sizes[0] if bad_root and sizes else None)
    path = built.bundle(tmp_path_factory.mktemp("b") / "bundle")
    if how != "none":
        (path / ENTRIES).write_bytes(_damage((path / ENTRIES).read_bytes(), how, pos, other))
    monkeypatch.setattr(bundle, "CHUNK", chunk)
    monkeypatch.setattr(bundle, "BLOCK", block)
    fast, pure = _both(monkeypatch, lambda: audit_bundle(path))
    assert fast == pure


@SETTINGS
@given(log=logs, line_cap=st.integers(40, 2000), chunk=st.integers(1, 9), block=st.sampled_from([50, 999, 4096]))
def test_overlong_lines_are_refused_alike(native: ModuleType, tmp_path_factory: pytest.TempPathFactory,
                                          monkeypatch: pytest.MonkeyPatch, log: tuple[list[str], list[int]],
                                          line_cap: int, chunk: int, block: int) -> None:
    """With a line cap some lines exceed, both verifiers stop at the same line with the same message
    (or at the same earlier error)."""
    path = Log(*log).bundle(tmp_path_factory.mktemp("b") / "bundle")
    monkeypatch.setattr(bundle, "MAX_LINE", line_cap)
    monkeypatch.setattr(bundle, "CHUNK", chunk)
    monkeypatch.setattr(bundle, "BLOCK", block)
    fast, pure = _both(monkeypatch, lambda: audit_bundle(path))
    assert fast == pure


def _pages(entries: list[AuditEntry], size: int) -> list[bytes]:
    digest = [None if e.payload_digest is None else bytes.fromhex(e.payload_digest.removeprefix("blake3:"))
              for e in entries]
    return [encode_page((e.index, e.entry, e.chain, d) for e, d in zip(entries[p:p + size], digest[p:p + size],
                                                                       strict=True))
            for p in range(0, len(entries), size)]


def _feed_pages(log: Log, pages: list[bytes], native: ModuleType | None, as_json: frozenset[int] = frozenset()
                ) -> Any:
    """Feed ``pages`` in order; with ``native``, the pages numbered in ``as_json`` arrive decoded,
    as a server answering JSON sends them."""
    audit = log.audit()
    if native is None:
        for page in pages:
            audit.feed(decode_page(page))
    else:
        feed = NativeFeed(audit, native)
        for k, page in enumerate(pages):
            if k in as_json:
                feed.entries_of(decode_page(page))
            else:
                feed.page(page)
    return audit.finish()


PAGE_DAMAGE = ["none", "flip", "truncate", "drop", "swap", "magic", "bad_root"]


@SETTINGS
@given(log=logs, how=st.sampled_from(PAGE_DAMAGE), pos=st.integers(0, 1 << 30), other=st.integers(0, 1 << 30),
       size=st.integers(1, 12), as_json=st.frozensets(st.integers(0, 12), max_size=3))
def test_entry_pages_verify_alike_intact_or_damaged(native: ModuleType, log: tuple[list[str], list[int]], how: str,
                                                    pos: int, other: int, size: int, as_json: frozenset[int]) -> None:
    """Binary entry pages (``verify --url``), intact or damaged, some of them arriving as JSON: the
    same report or the same error."""
    kinds, sizes = log
    built = Log(kinds, sizes, bad_root_at=len(kinds) if how == "bad_root" else None)
    pages = _pages(built.audit_entries(), size)
    k = pos % len(pages)
    if how == "flip":
        at = other % len(pages[k])
        pages[k] = pages[k][:at] + bytes([pages[k][at] ^ 0x40]) + pages[k][at + 1:]
    elif how == "truncate":
        pages[k] = pages[k][:other % len(pages[k])]
    elif how == "drop":
        del pages[k]
    elif how == "swap":
        pages[k], pages[other % len(pages)] = pages[other % len(pages)], pages[k]
    elif how == "magic":
        pages[k] = b"STE2" + pages[k][4:]
    assert _outcome(lambda: _feed_pages(built, pages, native)) == _outcome(lambda: _feed_pages(built, pages, None))
    decodable = frozenset(k for k in as_json if k < len(pages) and _outcome(partial(decode_page, pages[k]))[0] == "ok")
    assert (_outcome(lambda: _feed_pages(built, pages, native, decodable))
            == _outcome(lambda: _feed_pages(built, pages, None)))


def test_reference_tree_roots_are_reproduced_and_a_wrong_one_refused(native: ModuleType) -> None:
    """The RFC 6962 reference tree (shared/vectors): the native run checks accept the reference
    root of every size 1..8 and refuse a wrong one, where the Python run checks refuse it too."""
    ref = json.loads(VECTORS.read_text())
    entries = [bytes.fromhex(h) for h in ref["leaf_inputs_hex"]]
    roots = [bytes.fromhex(h) for h in ref["root_by_size_hex"]]
    chains = chain_fold(chain_seed(ORIGIN), merkle.leaf_hashes(entries))
    page = encode_page((i, e, c, None) for i, (e, c) in enumerate(zip(entries, chains, strict=True)))
    pending = [(size, roots[size]) for size in range(1, 9)]
    engine = native.Engine(0, [], chain_seed(ORIGIN), pending, 0, 0, 8, 10, 1 << 20)
    present, others = engine.feed_page(page)
    assert (present, len(others)) == (0, 8)  # no stored payloads: left to the Python payload check
    size, hashes, prev, consumed, good, matched = engine.state()
    assert (size, consumed, good, matched, prev) == (8, 8, 8, 8, chains[-1])
    assert hashes == [roots[8]]
    wrong = [*pending[:4], (5, roots[4]), *pending[5:]]
    engine = native.Engine(0, [], chain_seed(ORIGIN), wrong, 0, 0, 8, 10, 1 << 20)
    assert engine.feed_page(page) is None
    assert engine.state()[0] == 0  # nothing of a refused page is kept


@SETTINGS
@given(log=logs, cut=st.integers(0, 60))
def test_a_run_resumed_from_its_state_ends_as_one_never_paused(log: tuple[list[str], list[int]], cut: int) -> None:
    """``LogAudit.run_state`` / ``resume`` (the seam the native verifier uses): an audit paused after
    ``cut`` entries and resumed in a fresh audit reports what one straight audit reports."""
    built = Log(*log)
    entries = built.audit_entries()
    cut = min(cut, len(entries))

    def straight() -> Any:
        audit = built.audit()
        audit.feed(entries)
        return audit.finish()

    def resumed() -> Any:
        paused = built.audit()
        paused.feed(entries[:cut])
        audit = built.audit()
        audit.resume(paused.run_state(), others=entries[:cut])
        audit.feed(entries[cut:])
        return audit.finish()

    assert _outcome(resumed) == _outcome(straight)
