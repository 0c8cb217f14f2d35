"""A whole private pipeline for chaos tests and the soak: its own PostgreSQL and Kafka on fixed
ports (so they can be restarted in place), ``sealtrail ingest``, two ``sealtrail ledger`` instances
and ``sealtrail projector`` as supervised subprocesses, and the end-of-run checks of DESIGN §8."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

from sealtrail.devstack import KafkaServer, PostgresServer
from sealtrail.devstack._proc import free_port
from tests.support.servers import remove_datadir, server_datadir

ROOT = Path(__file__).resolve().parents[2]
TENANT = "chaos"


@dataclass
class Service:
    """One ``sealtrail <args>`` subprocess in its own process group; restarted by :meth:`ensure`."""

    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    health_port: int
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    paused: bool = False

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sealtrail.cli.main", *self.args], env=self.env, cwd=ROOT,
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.starts += 1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ensure(self) -> bool:
        """Start it again if it exited (a fault, or it gave up on a dependency); True if restarted."""
        if self.paused or self.alive():
            return False
        self.start()
        return True

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole process group and reap it."""
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()

    def rss_mib(self) -> float:
        """Resident memory of the process group, in MiB (0 when not running)."""
        if not self.alive() or self.proc is None:
            return 0.0
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == self.proc.pid:
                    total += int(fields[21])  # rss in pages
            except (OSError, ValueError, IndexError):
                continue
        return total * os.sysconf("SC_PAGE_SIZE") / 2**20


@dataclass
class Pipeline:
    """PostgreSQL, Kafka and the services, all under ``work``."""

    work: Path
    partitions: int = 4
    pg: PostgresServer = field(init=False)
    kafka: KafkaServer = field(init=False)
    services: dict[str, Service] = field(default_factory=dict)
    token: str = ""
    ingest_port: int = 0

    def __post_init__(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        # Durable: the faults kill PostgreSQL, and a commit it acknowledged must survive that.
        self.pg = PostgresServer(datadir=server_datadir("pipeline"), port=free_port(), durable=True)
        self.kafka = KafkaServer(datadir=self.work / "kafka", port=free_port(), controller_port=free_port())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ingest_port}"

    async def start(self) -> None:
        await asyncio.to_thread(self.pg.start)
        await asyncio.to_thread(self.kafka.start)
        token, env = await provision_tenant(self.pg.url, self.work)
        self.token = token
        base = {**os.environ, **env, "SEALTRAIL_KAFKA_BOOTSTRAP": self.kafka.bootstrap,
                "SEALTRAIL_SIGNING_KEY_DIR": str(self.work / "keys"),
                "SEALTRAIL_TOPIC_PARTITIONS": str(self.partitions), "SEALTRAIL_CHECKPOINT_INTERVAL_S": "0.5",
                "SEALTRAIL_LOG_LEVEL": "INFO"}
        self.ingest_port = free_port()
        self._add("ingest", ["ingest", "--port", str(self.ingest_port), "--workers", "1"], base,
                  self.ingest_port)
        # The first ledger creates the topics and the signing key alone; the second joins after.
        self._add("ledger-1", ["ledger", "--max-records", "500"], {**base, "SEALTRAIL_LEDGER_INSTANCE_ID": "ledger-1"})
        await self.wait_healthy("ledger-1")
        self._add("ledger-2", ["ledger", "--max-records", "500"], {**base, "SEALTRAIL_LEDGER_INSTANCE_ID": "ledger-2"})
        self._add("projector", ["projector", "--poll-interval", "0.2"], base)
        await self.wait_healthy("ingest", path="/readyz")
        await self.wait_healthy("ledger-2")
        await self.wait_healthy("projector")

    def _add(self, name: str, args: list[str], env: dict[str, str], port: int = 0) -> None:
        port = port or free_port()
        if "--port" not in args:
            args = [*args, "--port", str(port)]
        svc = Service(name, args, env, self.work / f"{name}.log", port)
        self.services[name] = svc
        svc.start()

    async def wait_healthy(self, name: str, *, path: str = "/healthz", within_s: float = 90) -> None:
        svc = self.services[name]
        deadline = time.monotonic() + within_s
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() < deadline:
                svc.ensure()
                try:
                    if (await client.get(f"http://127.0.0.1:{svc.health_port}{path}")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.3)
        raise AssertionError(f"{name} not healthy within {within_s:.0f}s; see {svc.log}")

    async def supervise(self, stop: asyncio.Event, restarts: dict[str, int]) -> None:
        """Restart any service that exited on its own (e.g. after losing PostgreSQL for too long)."""
        while not stop.is_set():
            for name, svc in self.services.items():
                if svc.ensure():
                    restarts[name] = restarts.get(name, 0) + 1
            await asyncio.sleep(0.5)

    def close(self) -> None:
        for svc in self.services.values():
            svc.paused = True
            svc.stop()
        self.kafka.stop()
        self.pg.stop()
        remove_datadir(self.pg.datadir)


async def provision_tenant(db_url: str, work: Path, tenant: str = TENANT) -> tuple[str, dict[str, str]]:
    """KEK and receipt-key files, ``tenant`` and a gateway key of it; the env services run with."""
    from sealtrail.core.note import generate_key
    from sealtrail.infra.apikeys import KeyAdmin
    from sealtrail.infra.auth import Role
    from sealtrail.infra.auth_postgres import PostgresAuthStore
    from sealtrail.infra.kek import IndexKeyWrapper, write_kek_file
    from sealtrail.infra.postgres import create_pool, migrate_url

    kek = write_kek_file(work / "kek")
    receipt = work / "receipt.key"
    receipt.write_text(generate_key(f"{tenant}-ingest")[0] + "\n")
    receipt.chmod(0o600)
    await migrate_url(db_url)
    pool = await create_pool(db_url, min_size=1, max_size=2)
    try:
        admin = KeyAdmin(store=PostgresAuthStore(pool=pool))
        await admin.create_tenant(tenant, kek=IndexKeyWrapper(kek=kek, tenant=tenant))
        issued = await admin.create_key(tenant=tenant, role=Role.GATEWAY, label=f"{tenant}-gw")
    finally:
        await pool.close()
    env = {"SEALTRAIL_DATABASE_URL": db_url, "SEALTRAIL_KEK_FILE": str(work / "kek"),
           "SEALTRAIL_SERVICE_KEY_FILE": str(receipt)}
    return issued.token, env


async def connect(db_url: str, *, within_s: float = 60) -> asyncpg.Connection:
    """A connection, retried while PostgreSQL is coming back."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            return await asyncpg.connect(db_url, timeout=5)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
