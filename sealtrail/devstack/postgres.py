"""A throwaway PostgreSQL cluster from the system's server binaries, on 127.0.0.1.

When the binaries are missing and the user is root, Debian's ``postgresql`` package is
installed; otherwise start() fails with a message saying what to install. PostgreSQL refuses to
run as root, so as root the cluster runs as the ``postgres`` system user.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from sealtrail.devstack._proc import apt_install, free_port, pid_alive, port_open, run, stop_pid, tail_file
from sealtrail.errors import ServiceStartError

DEFAULT_DB = "sealtrail"
DEFAULT_USER = "sealtrail"


def find_bindir() -> Path | None:
    """The newest installed PostgreSQL server bin directory that has initdb and pg_ctl."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True
    )
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))
    for c in candidates:
        if all((Path(c) / tool).exists() for tool in ("initdb", "pg_ctl", "psql")):
            return Path(c)
    return None


def ensure_bindir() -> Path:
    """Find the server binaries, installing Debian's package when allowed."""
    found = find_bindir()
    if found is None:
        apt_install(["postgresql"], why="PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        found = find_bindir()
    if found is None:
        raise ServiceStartError("PostgreSQL server binaries not found even after installing `postgresql`")
    return found


# Server settings for the ledger's write load, here and in deploy/ (tests/unit/test_deploy_files.py
# holds them equal). The ledger writes tens of MB/s of WAL: at the default max_wal_size (1 GB) a
# checkpoint comes every few seconds and each one restarts full-page images of every page touched.
# One batch transaction writes ~3.6 KB of WAL per entry, 10 MB and more per commit under load: with
# the default wal_buffers (1/32 of shared_buffers, here 8 MB) the backend stalls writing WAL itself
# mid-transaction. Measured end to end at 15,000 events/s (bench/bench_e2e.py --pg-setting), p99
# from 202 to checkpoint went from 3.7 to 1.8 s and from 5.1 to 3.2 s in two A/B pairs with 64 MB.
LEDGER_WRITE_SETTINGS = ("max_wal_size=8GB", "checkpoint_timeout=15min", "wal_buffers=64MB")


@dataclass
class PostgresServer:
    """One local cluster in ``datadir``. ``durable=False`` trades crash safety for test speed."""

    datadir: Path
    port: int = 0
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    durable: bool = False
    settings: tuple[str, ...] = ()  # extra "name=value" server settings, after the defaults

    @property
    def url(self) -> str:
        return f"postgresql://{DEFAULT_USER}:{self.password}@127.0.0.1:{self.port}/{DEFAULT_DB}"

    @property
    def _pgdata(self) -> Path:
        return self.datadir / "pgdata"

    @property
    def _log(self) -> Path:
        return self.datadir / "postgres.log"

    def init(self) -> None:
        """Create the cluster and the ``sealtrail`` database (once)."""
        bindir = ensure_bindir()
        self.datadir.mkdir(parents=True, exist_ok=True)
        if (self._pgdata / "PG_VERSION").exists():
            return
        self._pgdata.mkdir(mode=0o700, exist_ok=True)
        pwfile = self.datadir / "pwfile"
        pwfile.write_text(self.password + "\n")
        self._chown_for_server(self.datadir, self._pgdata, pwfile)
        self._as_server_user([
            str(bindir / "initdb"), "-D", str(self._pgdata), "-U", DEFAULT_USER, "--pwfile", str(pwfile),
            "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--locale=C.UTF-8",
        ], what="initdb")
        pwfile.unlink()

    def start(self, *, timeout: float = 60) -> None:
        """Start the server and wait until it accepts connections; create the database once."""
        if not (self._pgdata / "PG_VERSION").exists():
            self.init()
        bindir = ensure_bindir()
        if self.port == 0:
            self.port = free_port()
        opts = [
            "-c listen_addresses=127.0.0.1", f"-c port={self.port}",
            f"-c unix_socket_directories={self._pgdata}", "-c max_connections=200",
            "-c shared_buffers=256MB",
        ]
        if not self.durable:
            opts += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        else:
            opts += [f"-c {setting}" for setting in LEDGER_WRITE_SETTINGS]
        opts += [f"-c {setting}" for setting in self.settings]
        self._as_server_user([
            str(bindir / "pg_ctl"), "-D", str(self._pgdata), "-l", str(self._log), "-w",
            "-t", str(int(timeout)), "-o", " ".join(opts), "start",
        ], what=f"PostgreSQL start (log: {self._log})")
        self._create_database(bindir)

    def stop(self) -> None:
        """Fast shutdown; no-op when not running."""
        pid = self.pid()
        if pid is None:
            return
        bindir = find_bindir()
        if bindir is not None:
            try:
                self._as_server_user(
                    [str(bindir / "pg_ctl"), "-D", str(self._pgdata), "-m", "fast", "-w", "stop"],
                    what="PostgreSQL stop",
                )
            except ServiceStartError:
                stop_pid(pid)
        else:
            stop_pid(pid)

    def kill(self) -> None:
        """SIGKILL the postmaster (fault injection); the next start() runs crash recovery."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, 9)

    def pid(self) -> int | None:
        pidfile = self._pgdata / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if pid_alive(pid) else None

    def running(self) -> bool:
        return self.pid() is not None and port_open(self.port)

    def _create_database(self, bindir: Path) -> None:
        psql = [str(bindir / "psql"), "-h", str(self._pgdata), "-p", str(self.port), "-U", DEFAULT_USER,
                "-d", "postgres", "-tAc"]
        exists = self._as_server_user([*psql, f"SELECT 1 FROM pg_database WHERE datname='{DEFAULT_DB}'"],
                                      what="psql")
        if exists.strip() != "1":
            self._as_server_user([*psql, f"CREATE DATABASE {DEFAULT_DB}"], what="create database")

    def _as_server_user(self, cmd: list[str], *, what: str) -> str:
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        try:
            return run(cmd, what=what)
        except ServiceStartError as e:
            raise ServiceStartError(f"{e}\n--- {self._log} ---\n{tail_file(self._log)}") from e

    def _chown_for_server(self, *paths: Path) -> None:
        if os.geteuid() != 0:
            return
        try:
            user = pwd.getpwnam("postgres")
        except KeyError as e:
            raise ServiceStartError("running as root but the `postgres` system user does not exist") from e
        # The server user must be able to traverse to its data directory.
        for parent in self.datadir.resolve().parents:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                subprocess.run(["chmod", "o+x", str(parent)], check=False)
        for p in paths:
            os.chown(p, user.pw_uid, user.pw_gid)
