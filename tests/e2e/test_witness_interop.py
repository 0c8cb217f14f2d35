"""Witness interoperability, both ways, with software that shares no code with Sealtrail.

- ``tests/interop/witnesslog``: a log built on github.com/transparency-dev/merkle and signed with
  golang.org/x/mod/sumdb/note submits checkpoints to ``sealtrail witness`` and verifies its
  cosignatures with github.com/transparency-dev/formats; forks, rollbacks, bad proofs, wrong keys,
  unknown logs and malformed bodies must get the protocol's statuses.
- litewitness from filippo.io/torchwood v0.6.1 (pinned by tests/interop/litewitness/go.mod and
  go.sum, built once into ~/.cache/sealtrail/litewitness-v0.6.1/) cosigns the checkpoints of
  ``sealtrail serve``, submitted by Sealtrail's witness client, and ``sealtrail verify proof
  --witness`` accepts them.
- omniwitness from github.com/transparency-dev/witness (pinned by tests/interop/omniwitness/go.mod,
  built once into ~/.cache/sealtrail/omniwitness-<version>/), with Sealtrail's log added to its
  built-in list by ``--additional_logs``.
- ``sealtrail serve --witness-config`` with litewitness, omniwitness and ``sealtrail witness``,
  quorum 2: every checkpoint reaches the quorum and ``sealtrail verify --witness ... --quorum 2``
  passes.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from sealtrail.core.checkpoint import parse_checkpoint
from sealtrail.core.cosignature import CosignatureVerifier
from sealtrail.core.note import b64decode, parse_note
from sealtrail.core.quorum import WitnessPolicy
from sealtrail.core.tlogproof import parse_proof
from sealtrail.core.witnessing import WitnessConfig, with_cosignatures
from sealtrail.infra.witnessclient import WitnessClient
from tests.support.serve import (
    TENANT,
    cli,
    create_key,
    send_events,
    serve_event,
    start_serve,
    wait_for_checkpoint,
)
from tests.support.thirdparty_witness import (
    GO_ENV,
    LITEWITNESS_NAME,
    OMNIWITNESS_NAME,
    BuildError,
    SshAgent,
    ThirdPartyWitness,
    cosigned_by_all,
    go,
    litewitness_binaries,
    omniwitness_binary,
    register_with_litewitness,
    sign_first_checkpoint,
    start_litewitness,
    three_witnesses,
    witness_table,
)
from tests.support.witness import start_witness, witness_key

INTEROP = Path(__file__).resolve().parents[1] / "interop"


def _go() -> str:
    try:
        return go()
    except BuildError as e:
        pytest.fail(str(e))


@pytest.fixture(scope="module")
def witnesslog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go log, built from its pinned go.mod and go.sum (modules come from the Go proxy)."""
    binary = tmp_path_factory.mktemp("witnesslog") / "witnesslog"
    done = subprocess.run([_go(), "build", "-o", str(binary), "."], cwd=INTEROP / "witnesslog",
                          env={**os.environ, **GO_ENV}, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        pytest.fail(f"building tests/interop/witnesslog failed:\n{done.stderr[-3000:]}")
    return binary


@pytest.fixture(scope="module")
def litewitness() -> Path:
    """litewitness and witnessctl at the pinned version, built once and cached."""
    try:
        return litewitness_binaries()
    except BuildError as e:
        pytest.fail(str(e))


@pytest.fixture(scope="module")
def omniwitness() -> Path:
    """omniwitness at the pinned version, built once and cached."""
    try:
        return omniwitness_binary()
    except BuildError as e:
        pytest.fail(str(e))


def test_a_go_log_is_witnessed_by_sealtrail_witness(witnesslog: Path, tmp_path: Path) -> None:
    """Eleven checkpoints cosigned and verified by the Go libraries; eight refusals with the right status."""
    keys = subprocess.run([str(witnesslog), "keygen", "-origin", "example.org/go-log"], capture_output=True,
                          text=True, timeout=60, check=True).stdout.split()
    skey, vkey = keys
    key_file, wvkey = witness_key(tmp_path)
    db = str(tmp_path / "witness.db")
    added = cli("witness", "log", "add", "--origin", "example.org/go-log", "--vkey", vkey, "--db", db)
    assert added.returncode == 0, added.stderr
    w = start_witness(key_file, wvkey, db)
    try:
        done = subprocess.run([str(witnesslog), "run", "-skey", skey, "-vkey", vkey, "-url", w.url,
                               "-witness-vkey", wvkey], capture_output=True, text=True, timeout=300, check=False)
    finally:
        w.stop()
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["cosigned"] == 11 and summary["size"] == 300


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[SshAgent]:
    a = SshAgent(tmp_path)
    yield a
    a.stop()


def test_litewitness_cosigns_sealtrail_checkpoints(litewitness: Path, agent: SshAgent, tmp_path: Path) -> None:
    """sealtrail serve signs checkpoints; Sealtrail's witness client submits them to litewitness (a new
    log first, then with a consistency proof from the query API); a tlog-proof carrying litewitness's
    cosignature passes ``sealtrail verify proof --witness``, and fails without it."""
    served = start_serve(tmp_path / "data")
    lw: ThirdPartyWitness | None = None
    try:
        auditor = create_key(served, "auditor")
        headers = {"Authorization": f"Bearer {auditor}"}
        keys = httpx.get(served.url + "/v1/keys", headers=headers).json()["keys"]
        log_vkeys = [k["vkey"] for k in keys if k["purpose"] in ("checkpoint", "cosign")]
        checkpoint_vkey = next(k["vkey"] for k in keys if k["purpose"] == "checkpoint")
        ids = asyncio.run(send_events(served.url, served.tokens["gateway"], [serve_event(i) for i in range(30)]))
        wait_for_checkpoint(served.url, auditor, TENANT, 30)
        first = httpx.get(f"{served.url}/v1/logs/{TENANT}/checkpoint", headers=headers).text
        origin = parse_checkpoint(parse_note(first).text).origin
        db = tmp_path / "litewitness.db"
        register_with_litewitness(litewitness, db, origin, checkpoint_vkey)
        lw = start_litewitness(litewitness, agent, db, tmp_path)
        config = WitnessConfig("litewitness", CosignatureVerifier.from_vkey(lw.vkey), lw.url)

        async def submit(note: str) -> str:
            async with httpx.AsyncClient() as http:
                async def proof(old: int, new: int) -> Sequence[bytes]:
                    r = await http.get(f"{served.url}/v1/logs/{TENANT}/proof/consistency",
                                       params={"from": old, "to": new}, headers=headers)
                    return [b64decode(h, "proof") for h in r.json()["proof"]]

                client = WitnessClient(config, http=http, known_size=known[0])
                size = parse_checkpoint(parse_note(note).text).size
                cosignature = await client.add_checkpoint(note, size, proof)
                known[0] = client.known_size
                return with_cosignatures(note, [cosignature])

        known = [0]
        asyncio.run(submit(first))  # a log new to litewitness: old size 0
        asyncio.run(send_events(served.url, served.tokens["gateway"], [serve_event(i) for i in range(30, 50)]))
        wait_for_checkpoint(served.url, auditor, TENANT, 50)
        latest = httpx.get(f"{served.url}/v1/logs/{TENANT}/checkpoint", headers=headers).text
        witnessed = asyncio.run(submit(latest))  # from size 30, with a consistency proof
        proof_text = httpx.get(f"{served.url}/v1/events/{ids[3]}/tlog-proof", headers=headers).text
        parsed = parse_proof(proof_text)
        entry = httpx.get(f"{served.url}/v1/logs/{TENANT}/entries",
                          params={"start": parsed.index, "end": parsed.index + 1}, headers=headers).json()
    finally:
        if lw is not None:
            lw.stop()
        served.stop()
    assert parse_note(parsed.note).text == parse_note(witnessed).text, "the proof is under the witnessed checkpoint"
    cosigned_file = tmp_path / "cosigned.tlog-proof"
    cosigned_file.write_text(proof_text.replace(parsed.note, witnessed))
    entry_file = tmp_path / "entry"
    entry_file.write_bytes(b64decode(entry["entries"][0]["entry"], "entry"))
    vkey_args = [a for v in log_vkeys for a in ("--vkey", v)]
    ok = cli("verify", "proof", str(cosigned_file), "--entry", str(entry_file), *vkey_args, "--witness", lw.vkey)
    assert ok.returncode == 0 and "witnessed by litewitness.example/w" in ok.stdout, ok.stderr
    plain = tmp_path / "plain.tlog-proof"
    plain.write_text(proof_text)
    refused = cli("verify", "proof", str(plain), "--entry", str(entry_file), *vkey_args, "--witness", lw.vkey)
    assert refused.returncode == 1 and "0 of the 1 witness cosignatures" in refused.stderr


def test_serve_is_witnessed_by_litewitness_omniwitness_and_sealtrail_witness(
        litewitness: Path, omniwitness: Path, agent: SshAgent, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """sealtrail serve --witness-config with litewitness, omniwitness (Sealtrail's log added to its
    built-in list) and sealtrail witness, quorum 2: every checkpoint the log signs reaches the
    quorum (the checkpoint list says so and the notes verify), the latest carries all three
    cosignatures, and ``sealtrail verify --witness x3 --quorum 2`` passes."""
    data = tmp_path / "data"
    signed = sign_first_checkpoint(data)
    auditor, gateway, headers = signed.auditor, signed.gateway, signed.headers
    origin, checkpoint_vkey = signed.origin, signed.checkpoint_vkey
    witnesses = three_witnesses(litewitness, omniwitness, agent, tmp_path, origin, checkpoint_vkey)
    config = tmp_path / "witnesses.toml"
    config.write_text("quorum = 2\n" + "".join(witness_table(label, w.vkey, w.url) for label, w in witnesses.items()))
    monkeypatch.setenv("SEALTRAIL_WITNESS_CONFIG", str(config))
    policy = WitnessPolicy.from_vkeys([w.vkey for w in witnesses.values()], 2)
    served = start_serve(data)
    try:
        for start in range(1, 61, 15):  # several checkpoints, each signed while the witnesses are up
            asyncio.run(send_events(served.url, gateway, [serve_event(i) for i in range(start, start + 15)]))
            wait_for_checkpoint(served.url, auditor, TENANT, start + 15)
        note = cosigned_by_all(served.url, headers, policy, 61)
        listed = httpx.get(f"{served.url}/v1/logs/{TENANT}/checkpoints", headers=headers).json()["checkpoints"]
        done = cli("verify", "--url", served.url, "--log", TENANT, "--token", auditor,
                   *[a for w in witnesses.values() for a in ("--witness", w.vkey)], "--quorum", "2")
    finally:
        served.stop()
        for w in witnesses.values():
            w.stop()
    assert {n.split(" ")[1] for n in note.splitlines() if n.startswith("— ")} >= {
        LITEWITNESS_NAME, OMNIWITNESS_NAME, "witness.example/w1"}
    assert len(listed) >= 5, listed  # the one signed before the restart and at least one per batch
    for item in listed:
        assert len(policy.check(item["note"]).names) >= 2, item
        assert item["witnesses"]["witnessed"] and item["witnesses"]["quorum"] == 2, item
    assert done.returncode == 0, done.stderr
    for name in (LITEWITNESS_NAME, OMNIWITNESS_NAME, "witness.example/w1"):
        assert name in done.stdout, done.stdout
