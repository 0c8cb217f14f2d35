"""``sealtrail serve --witness-config``: every checkpoint goes to the witnesses (the latest one
signed before the start too), their cosignatures are served with it, and ``sealtrail verify
--witness ... --quorum 2`` passes; a witness that is down does not stop the ledger, and the lag
gauge shows it is caught up."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from sealtrail.core.checkpoint import parse_checkpoint
from sealtrail.core.note import parse_note
from sealtrail.core.quorum import WitnessPolicy
from sealtrail.core.tlogproof import parse_proof
from tests.support.serve import (
    TENANT,
    cli,
    create_key,
    free_port,
    send_events,
    serve_event,
    start_serve,
    wait_for_checkpoint,
)
from tests.support.witness import WitnessProcess, start_witness, witness_key


def _witnessed_note(url: str, token: str, policy: WitnessPolicy, size: int, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = httpx.get(f"{url}/v1/logs/{TENANT}/checkpoint", headers={"Authorization": f"Bearer {token}"})
        if (r.status_code == 200 and int(r.text.splitlines()[1]) >= size
                and len(policy.cosigners(r.text).names) >= 2):
            return r.text
        time.sleep(0.1)
    raise TimeoutError(f"no checkpoint covering {size} entries reached the quorum in {timeout} s")


def test_serve_gets_every_checkpoint_witnessed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two sealtrail witnesses and one that is down, quorum 2."""
    data = tmp_path / "data"
    served = start_serve(data)
    witnesses: list[WitnessProcess] = []
    try:
        auditor, gateway = create_key(served, "auditor"), served.tokens["gateway"]
        assert len(asyncio.run(send_events(served.url, gateway, [serve_event(0)]))) == 1
        wait_for_checkpoint(served.url, auditor, TENANT, 1)
        note = httpx.get(f"{served.url}/v1/logs/{TENANT}/checkpoint",
                         headers={"Authorization": f"Bearer {auditor}"}).text
        origin = parse_checkpoint(parse_note(note).text).origin
        keys = httpx.get(served.url + "/v1/keys", headers={"Authorization": f"Bearer {auditor}"}).json()["keys"]
        checkpoint_vkey = next(k["vkey"] for k in keys if k["purpose"] == "checkpoint")
    finally:
        served.stop()
    tables = []
    for n in (1, 2):
        key_file, vkey = witness_key(tmp_path, f"witness.example/w{n}")
        db = str(tmp_path / f"w{n}.db")
        added = cli("witness", "log", "add", "--origin", origin, "--vkey", checkpoint_vkey, "--db", db)
        assert added.returncode == 0, added.stderr
        witnesses.append(start_witness(key_file, vkey, db))
        tables.append(f'[[witness]]\nname = "w{n}"\nvkey = "{vkey}"\nurl = "{witnesses[-1].url}"\n')
    _, down_vkey = witness_key(tmp_path, "witness.example/down")
    tables.append(f'[[witness]]\nname = "down"\nvkey = "{down_vkey}"\nurl = "http://127.0.0.1:{free_port()}"\n')
    config = tmp_path / "witnesses.toml"
    config.write_text("quorum = 2\n" + "".join(tables))
    monkeypatch.setenv("SEALTRAIL_WITNESS_CONFIG", str(config))
    policy = WitnessPolicy.from_vkeys([w.vkey for w in witnesses], 2)
    served = start_serve(data)
    try:
        _witnessed_note(served.url, auditor, policy, 1)  # signed before the restart, offered at start
        signed_at = time.monotonic()
        ids = asyncio.run(send_events(served.url, gateway, [serve_event(i) for i in range(1, 120)]))
        assert len(ids) == 119
        witnessed = _witnessed_note(served.url, auditor, policy, 120)
        took = time.monotonic() - signed_at
        assert parse_checkpoint(parse_note(witnessed).text).size == 120
        args = [a for w in witnesses for a in ("--witness", w.vkey)]
        done = cli("verify", "--url", served.url, "--log", TENANT, "--token", auditor, *args, "--quorum", "2")
        assert done.returncode == 0, done.stderr
        assert "latest checkpoint cosigned by witnesses" in done.stdout
        assert "witness.example/w1" in done.stdout and "witness.example/w2" in done.stdout
        latest = httpx.get(f"{served.url}/v1/logs/{TENANT}/checkpoint", headers={"Authorization": f"Bearer {auditor}"})
        assert (latest.headers["Sealtrail-Witness-Cosignatures"], latest.headers["Sealtrail-Witness-Quorum"]) == (
            "2", "2")
        bundle = tmp_path / "bundle.tar.gz"
        exported = cli("export", "--url", served.url, "--log", TENANT, "--token", auditor, "--out", str(bundle))
        assert exported.returncode == 0, exported.stderr
        offline = cli("verify", "bundle", str(bundle), *args, "--quorum", "2")
        assert offline.returncode == 0 and "latest checkpoint cosigned by witnesses" in offline.stdout, offline.stderr
        proof_text = httpx.get(f"{served.url}/v1/events/{ids[-1]}/tlog-proof",
                               headers={"Authorization": f"Bearer {auditor}"}).text
        assert len(policy.check(parse_proof(proof_text).note).names) == 2  # the proof file carries them too
        metrics = httpx.get(served.url + "/metrics").text
        assert f'sealtrail_ledger_witness_lag_entries{{log="{TENANT}"}} 0.0' in metrics
        assert 'sealtrail_ledger_witness_failures_total{witness="down"}' in metrics
    finally:
        served.stop()
        for w in witnesses:
            w.stop()
    assert took < 30
