"""``python -m sealtrail.devstack up [--all] | down | status [--dir D]``: the local stack by hand.

``up`` starts local PostgreSQL and Kafka and prints shell ``export`` lines on stdout (progress goes
to stderr), so ``eval "$(deploy/local/up)"`` configures a shell for every service and the CLI.
``up --all`` also starts the four services (:mod:`sealtrail.devstack.services`) with secrets kept
in the state directory (:mod:`sealtrail.devstack.secrets`), creates a tenant with one API key per
role and exports the URLs and tokens. ``down`` stops whatever of it runs; ``status`` lists it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from sealtrail.devstack import services
from sealtrail.devstack._proc import free_port, port_open
from sealtrail.devstack.kafka import KafkaServer
from sealtrail.devstack.postgres import PostgresServer
from sealtrail.devstack.secrets import ensure_secrets, provision_tenant, write_private
from sealtrail.errors import ServiceStartError

STATE = "stack.json"
DEFAULT_TENANT = "local"


def _state(d: Path) -> dict[str, Any]:
    loaded = json.loads((d / STATE).read_text()) if (d / STATE).exists() else {}
    return loaded if isinstance(loaded, dict) else {}


def _load(d: Path) -> tuple[PostgresServer, KafkaServer]:
    state = _state(d)
    pg = PostgresServer(datadir=d / "postgres", port=state.get("pg_port", 0), durable=True)
    if "pg_password" in state:
        pg.password = state["pg_password"]
    kafka = KafkaServer(datadir=d / "kafka", port=state.get("kafka_port", 0),
                        controller_port=state.get("kafka_controller_port", 0))
    return pg, kafka


def _save(d: Path, pg: PostgresServer, kafka: KafkaServer,
          procs: list[services.ServiceProcess] | None = None) -> None:
    state = _state(d) | {"pg_port": pg.port, "pg_password": pg.password, "kafka_port": kafka.port,
                         "kafka_controller_port": kafka.controller_port}
    if procs is not None:
        state["services"] = services.dump(procs)
    write_private(d / STATE, json.dumps(state, indent=2))


def _export(name: str, value: str) -> None:
    print(f"export {name}={shlex.quote(value)}")


def up(d: Path, *, all_services: bool = False, tenant: str = DEFAULT_TENANT) -> int:
    d.mkdir(parents=True, exist_ok=True)
    pg, kafka = _load(d)
    if not pg.running():
        print(f"starting PostgreSQL in {pg.datadir} ...", file=sys.stderr)
        pg.start()
    if not kafka.running():
        print(f"starting Kafka in {kafka.datadir} ...", file=sys.stderr)
        kafka.start()
    _save(d, pg, kafka)
    _export("SEALTRAIL_DATABASE_URL", pg.url)
    _export("SEALTRAIL_KAFKA_BOOTSTRAP", kafka.bootstrap)
    print(f"PostgreSQL on 127.0.0.1:{pg.port}, Kafka on {kafka.bootstrap}", file=sys.stderr)
    if all_services:
        _up_services(d, pg, kafka, tenant)
    return 0


def _up_services(d: Path, pg: PostgresServer, kafka: KafkaServer, tenant: str) -> None:
    """Start the services that are not running, in order, each ready before the next; then the tenant."""
    secrets = ensure_secrets(d)
    procs = services.load(_state(d))
    for svc in procs:
        if svc.running():
            print(f"{svc.name} already running (pid {svc.pid})", file=sys.stderr)
        else:
            if port_open(svc.port):  # taken by another program since the last run: move
                svc.port = free_port()
            print(f"starting {svc.name} on {svc.url} ...", file=sys.stderr)
            services.start(svc, state_dir=d, env=services.environment(
                svc.name, db_url=pg.url, bootstrap=kafka.bootstrap, secrets=secrets))
            _save(d, pg, kafka, procs)  # recorded at once: `down` stops it even if a later step fails
        services.wait_ready(svc, state_dir=d)
    tokens = asyncio.run(provision_tenant(db_url=pg.url, secrets=secrets, tenant=tenant))
    urls = {s.name: s.url for s in procs}
    _export("SEALTRAIL_KEK_FILE", str(secrets.kek))
    _export("SEALTRAIL_SIGNING_KEY_DIR", str(secrets.ledger_keys))
    _export("SEALTRAIL_INGEST_URL", urls["ingest"])
    _export("SEALTRAIL_QUERY_URL", urls["query"])
    _export("SEALTRAIL_TENANT", tenant)
    for role, token in tokens.items():
        _export(f"SEALTRAIL_{role.upper()}_TOKEN", token)
    print(f"ledger, ingest, query and projector ready; tenant {tenant!r}; logs in {d / 'logs'}, "
          f"tokens kept in {secrets.tokens}", file=sys.stderr)


def down(d: Path) -> int:
    pg, kafka = _load(d)
    state = _state(d)
    if "services" in state:  # started by `up --all` at least once
        procs = services.load(state)
        for svc in reversed(procs):
            if svc.running():
                print(f"stopping {svc.name} (pid {svc.pid}) ...", file=sys.stderr)
            services.stop(svc)
        _save(d, pg, kafka, procs)
    kafka.stop()
    pg.stop()
    print("stopped the services, PostgreSQL and Kafka (data kept in " + str(d) + ")", file=sys.stderr)
    return 0


def status(d: Path) -> int:
    if not (d / STATE).exists():
        print(f"no local stack in {d}; run deploy/local/up")
        return 1
    pg, kafka = _load(d)
    ok = True
    for name, srv, where in (("postgres", pg, f"127.0.0.1:{pg.port}"), ("kafka", kafka, kafka.bootstrap)):
        alive = srv.running()
        ok &= alive
        print(f"{name:9} {'up' if alive else 'down':5} {where}  pid={srv.pid() or '-'}")
    state = _state(d)
    if "services" in state:
        for svc in services.load(state):
            alive = svc.running()
            ok &= alive or not svc.pid
            if alive:
                how = "ready" if svc.ready() else "not ready"
            else:
                how = f"exited, see {d / 'logs' / svc.name}.log" if svc.pid else "stopped"
            print(f"{svc.name:9} {'up' if alive else 'down':5} {svc.url}  pid={svc.pid if alive else '-'}  {how}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deploy/local", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--dir", type=Path, default=Path(".local/stack"),
                        help="state directory (default: .local/stack)")
    parser.add_argument("--all", action="store_true",
                        help="up: also start ledger, ingest, query and projector and create a tenant")
    parser.add_argument("--tenant", default=DEFAULT_TENANT, help=f"up --all: the tenant (default: {DEFAULT_TENANT})")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            return up(args.dir.resolve(), all_services=args.all, tenant=args.tenant)
        return {"down": down, "status": status}[args.command](args.dir.resolve())
    except ServiceStartError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
