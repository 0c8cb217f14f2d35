"""The auditor's console in Chromium: checkpoints, keys and the pinned key, and verification of
an event in the browser, which fails for a tampered proof, a tampered entry and a wrong key."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from playwright.sync_api import Route

from sealtrail.core.note import encode_vkey
from tests.e2e.console.conftest import Console, SignedIn, b64flip


def wrong_vkey(pinned: str) -> str:
    """A verifier key with the pinned key's name and another public key."""
    name = pinned.split("+", 1)[0]
    public = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return encode_vkey(name, 0x01, public)


def verify(s: SignedIn, event_id: str) -> str:
    s.go("keys")  # another view first: the verdict below is always a fresh one
    page = s.go(f"verify?id={event_id}")
    verdict = page.locator("#verdict")
    page.wait_for_function("() => document.getElementById('verdict')?.dataset.verified", timeout=30_000)
    return f"{verdict.get_attribute('data-verified')}: {verdict.inner_text()}"


def test_auditor_pages_are_proofs_only(new_page: Any, console: Console) -> None:
    s = new_page().sign_in("auditor")
    assert [a.inner_text() for a in s.page.locator("#nav a").all()] == ["Checkpoints", "Keys", "Verify"]
    page = s.go("checkpoints")
    rows = page.locator("tbody tr")
    assert rows.count() >= 1
    assert "sealtrail.local/ledger" in rows.first.inner_text()
    s.shot("checkpoints")
    page = s.go("keys")
    assert console.checkpoint_vkey in page.inner_text("#view")
    page.fill("#pinned-key", console.checkpoint_vkey)
    page.click("#pin")
    assert page.evaluate("localStorage.getItem('sealtrail.console.checkpointKey')") == console.checkpoint_vkey
    s.shot("keys")
    # pages of other roles are absent, and the server refuses their data
    page = s.go("calls")
    assert "no page calls for the role auditor" in page.inner_text("#view")
    status = page.evaluate("fetch('/v1/calls').then(r => r.status)")
    assert status == 403


def test_verification_passes_for_a_real_event(new_page: Any, console: Console) -> None:
    s = new_page().sign_in("auditor")
    s.pin(console.checkpoint_vkey)
    result = verify(s, console.reveal_id)
    assert result.startswith("yes: verified"), result
    assert "tree size" in result and "root" in result and "webcrypto" in result
    s.shot("verify")


def test_verification_fails_for_a_tampered_proof(new_page: Any, console: Console) -> None:
    s = new_page().sign_in("auditor")
    s.pin(console.checkpoint_vkey)

    def tampered(route: Route) -> None:
        r = route.fetch()
        head, note = r.text().split("\n\n", 1)
        lines = head.split("\n")
        index = next(i for i, line in enumerate(lines) if line.startswith("index ")) + 1
        lines[index] = b64flip(lines[index])
        route.fulfill(response=r, body="\n".join(lines) + "\n\n" + note)

    s.page.route("**/tlog-proof", tampered)
    result = verify(s, console.reveal_id)
    assert result.startswith("no: not verified"), result
    assert "does not lead to the signed root" in result


def test_verification_fails_for_a_tampered_entry(new_page: Any, console: Console) -> None:
    s = new_page().sign_in("auditor")
    s.pin(console.checkpoint_vkey)

    def tampered(route: Route) -> None:
        r = route.fetch()
        body = r.json()
        body["entries"][0]["entry"] = b64flip(body["entries"][0]["entry"])
        route.fulfill(response=r, json=body)

    s.page.route("**/v1/logs/*/entries*", tampered)
    result = verify(s, console.reveal_id)
    assert result.startswith("no: not verified") and "does not lead to the signed root" in result, result


def test_verification_fails_for_a_wrong_pinned_key(new_page: Any, console: Console) -> None:
    s = new_page().sign_in("auditor")
    s.pin(wrong_vkey(console.checkpoint_vkey))
    result = verify(s, console.reveal_id)
    assert result.startswith("no: not verified") and "not signed by the pinned key" in result, result
    s.pin("other.example/log+00000000+AAAA")
    assert verify(s, console.reveal_id).startswith("no: not verified")


def test_verification_fails_for_a_checkpoint_whose_signed_text_changed(new_page: Any, console: Console) -> None:
    s = new_page().sign_in("auditor")
    s.pin(console.checkpoint_vkey)

    def tampered(route: Route) -> None:
        r = route.fetch()
        head, note = r.text().split("\n\n", 1)
        origin, size, rest = note.split("\n", 2)
        route.fulfill(response=r, body=f"{head}\n\n{origin}\n{int(size) + 1}\n{rest}")

    s.page.route("**/tlog-proof", tampered)
    result = verify(s, console.reveal_id)
    assert result.startswith("no: not verified") and "does not verify" in result, result

NO_WEBCRYPTO_ED25519 = """(() => {
  const importKey = SubtleCrypto.prototype.importKey;
  SubtleCrypto.prototype.importKey = function (format, data, algorithm, ...rest) {
    if ((algorithm?.name ?? algorithm) === 'Ed25519') {
      return Promise.reject(new DOMException('Algorithm: Unrecognized name', 'NotSupportedError'));
    }
    return importKey.call(this, format, data, algorithm, ...rest);
  };
})();"""


def test_without_ed25519_in_webcrypto_the_vendored_library_verifies(new_page: Any, console: Console) -> None:
    s = new_page()
    s.page.add_init_script(NO_WEBCRYPTO_ED25519)
    s.sign_in("auditor")
    s.pin(console.checkpoint_vkey)
    result = verify(s, console.reveal_id)
    assert result.startswith("yes: verified") and "noble-ed25519" in result, result

    def tampered(route: Route) -> None:
        r = route.fetch()
        head, note = r.text().split("\n\n", 1)
        origin, size, rest = note.split("\n", 2)
        route.fulfill(response=r, body=f"{head}\n\n{origin}\n{int(size) + 1}\n{rest}")

    s.page.route("**/tlog-proof", tampered)
    result = verify(s, console.reveal_id)
    assert result.startswith("no: not verified") and "does not verify" in result, result
