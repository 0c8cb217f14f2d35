"""``python -m sealtrail.devstack up|down|status [--dir D]``: local PostgreSQL and Kafka by hand.

``up`` prints shell ``export`` lines on stdout (progress goes to stderr), so
``eval "$(deploy/local/up)"`` configures a shell for every service and the CLI.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sealtrail.devstack.kafka import KafkaServer
from sealtrail.devstack.postgres import PostgresServer
from sealtrail.errors import ServiceStartError

STATE = "stack.json"


def _load(d: Path) -> tuple[PostgresServer, KafkaServer]:
    state = json.loads((d / STATE).read_text()) if (d / STATE).exists() else {}
    pg = PostgresServer(datadir=d / "postgres", port=state.get("pg_port", 0), durable=True)
    if "pg_password" in state:
        pg.password = state["pg_password"]
    kafka = KafkaServer(datadir=d / "kafka", port=state.get("kafka_port", 0),
                        controller_port=state.get("kafka_controller_port", 0))
    return pg, kafka


def _save(d: Path, pg: PostgresServer, kafka: KafkaServer) -> None:
    state = {"pg_port": pg.port, "pg_password": pg.password, "kafka_port": kafka.port,
             "kafka_controller_port": kafka.controller_port}
    path = d / STATE
    path.write_text(json.dumps(state, indent=2))
    path.chmod(0o600)


def up(d: Path) -> int:
    d.mkdir(parents=True, exist_ok=True)
    pg, kafka = _load(d)
    if not pg.running():
        print(f"starting PostgreSQL in {pg.datadir} ...", file=sys.stderr)
        pg.start()
    if not kafka.running():
        print(f"starting Kafka in {kafka.datadir} ...", file=sys.stderr)
        kafka.start()
    _save(d, pg, kafka)
    print(f"export SEALTRAIL_DATABASE_URL='{pg.url}'")
    print(f"export SEALTRAIL_KAFKA_BOOTSTRAP='{kafka.bootstrap}'")
    print(f"PostgreSQL on 127.0.0.1:{pg.port}, Kafka on {kafka.bootstrap}", file=sys.stderr)
    return 0


def down(d: Path) -> int:
    pg, kafka = _load(d)
    kafka.stop()
    pg.stop()
    print("stopped PostgreSQL and Kafka (data kept in " + str(d) + ")", file=sys.stderr)
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
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deploy/local", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--dir", type=Path, default=Path(".local/stack"),
                        help="state directory (default: .local/stack)")
    args = parser.parse_args(argv)
    try:
        return {"up": up, "down": down, "status": status}[args.command](args.dir.resolve())
    except ServiceStartError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
