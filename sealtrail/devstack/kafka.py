"""A one-node Apache Kafka broker in KRaft combined mode, on 127.0.0.1, from Maven Central jars.

The jars are fetched once with ``mvn dependency:copy-dependencies`` of ``deploy/kafka/pom.xml``
into a user cache directory (``$XDG_CACHE_HOME/sealtrail/kafka-<version>``), so later runs start
without downloading. Storage is formatted with ``kafka.tools.StorageTool`` and the broker is
started as ``kafka.Kafka`` with a small heap.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sealtrail.devstack._proc import (
    apt_install,
    free_port,
    pid_alive,
    port_open,
    run,
    stop_pid,
    tail_file,
)
from sealtrail.errors import ServiceStartError

KAFKA_VERSION = "3.9.1"
POM = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "pom.xml"

_LOG4J = """\
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File={log}
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
"""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sealtrail" / f"kafka-{KAFKA_VERSION}"


def ensure_java() -> str:
    java = shutil.which("java")
    if java is None:
        apt_install(["default-jre-headless"], why="Java (needed to run Kafka) is not installed")
        java = shutil.which("java")
    if java is None:
        raise ServiceStartError("java not found even after installing default-jre-headless")
    return java


def ensure_jars() -> Path:
    """The directory of Kafka jars, fetched through Maven on first use."""
    libs = cache_dir() / "libs"
    if (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
        return libs
    if shutil.which("mvn") is None:
        apt_install(["maven"], why="Maven (needed once to fetch the Kafka jars) is not installed")
    ensure_java()
    if not POM.exists():
        raise ServiceStartError(f"Kafka pom not found at {POM}")
    staging = libs.parent / f"libs.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    run(["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
         f"-Dkafka.version={KAFKA_VERSION}", f"-DoutputDirectory={staging}"],
        what="fetching the Kafka jars with Maven", timeout=900)
    if libs.exists():  # another process won the race
        shutil.rmtree(staging, ignore_errors=True)
    else:
        staging.rename(libs)
    return libs


def _cluster_id() -> str:
    """A random KRaft cluster id. Like Kafka's own, never one starting with '-', which the storage
    tool's argument parser would read as an option."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


@dataclass
class KafkaServer:
    """One KRaft broker+controller whose state lives in ``datadir``."""

    datadir: Path
    port: int = 0
    controller_port: int = 0
    heap: str = "512m"
    settings: dict[str, str] = field(default_factory=dict)
    """Broker properties set beside (or instead of) the defaults below."""

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def _log(self) -> Path:
        return self.datadir / "kafka.log"

    @property
    def _pidfile(self) -> Path:
        return self.datadir / "kafka.pid"

    def _write_config(self) -> Path:
        if self.port == 0:
            self.port = free_port()
        if self.controller_port == 0:
            self.controller_port = free_port()
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.datadir / "data"),
            "num.partitions": "4",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "log.retention.hours": "168",
            "log.segment.bytes": str(64 * 1024 * 1024),
            **self.settings,
        }
        cfg = self.datadir / "server.properties"
        cfg.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (self.datadir / "log4j.properties").write_text(_LOG4J.format(log=self._log))
        return cfg

    def _java(self, libs: Path, main: str, *args: str) -> list[str]:
        return [
            ensure_java(), f"-Xmx{self.heap}", f"-Xms{self.heap}", "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{self.datadir / 'log4j.properties'}",
            "-cp", f"{libs}/*", main, *args,
        ]

    def start(self, *, timeout: float = 90) -> None:
        """Format storage on first start, launch the broker, wait until it serves metadata."""
        libs = ensure_jars()
        self.datadir.mkdir(parents=True, exist_ok=True)
        cfg = self._write_config()
        if not (self.datadir / "data" / "meta.properties").exists():
            run(self._java(libs, "kafka.tools.StorageTool", "format", "-t", _cluster_id(), "-c", str(cfg)),
                what="Kafka storage format")
        with open(self.datadir / "kafka.out", "ab") as out:
            proc = subprocess.Popen(
                self._java(libs, "kafka.Kafka", str(cfg)), stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        self._pidfile.write_text(str(proc.pid))
        self._wait_ready(proc.pid, timeout)

    def _wait_ready(self, pid: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                raise ServiceStartError(
                    f"Kafka exited during start-up:\n{tail_file(self.datadir / 'kafka.out')}\n"
                    f"{tail_file(self._log)}"
                )
            if port_open(self.port) and _probe(self.bootstrap):
                return
            time.sleep(0.3)
        raise ServiceStartError(f"Kafka did not serve within {timeout:.0f}s:\n{tail_file(self._log)}")

    def pid(self) -> int | None:
        try:
            pid = int(self._pidfile.read_text())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def running(self) -> bool:
        return self.pid() is not None and port_open(self.port)

    def stop(self, *, timeout: float = 30) -> None:
        pid = self.pid()
        if pid is not None:
            stop_pid(pid, timeout=timeout)
        self._pidfile.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL the broker (fault injection)."""
        pid = self.pid()
        if pid is not None:
            stop_pid(pid, timeout=0)


def _probe(bootstrap: str) -> bool:
    """True once the broker answers metadata and can create and describe a topic."""
    return asyncio.run(_aprobe(bootstrap))


async def _aprobe(bootstrap: str) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaError, TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await admin.start()
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([NewTopic("sealtrail.probe", 1, 1)])
        described = await admin.describe_topics(["sealtrail.probe"])
        return bool(described) and described[0].get("error_code", 1) == 0
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        await admin.close()
