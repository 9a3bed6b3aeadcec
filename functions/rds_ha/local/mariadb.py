"""Real MariaDB servers on loopback for the local lab and the tests: Debian's `mariadbd` (the package CI
installs), a primary with binary logging, replicas by GTID (`MASTER_USE_GTID=slave_pos`, every server logging
what it replays, as RDS does, so a promoted replica can serve new replicas), promotion by `STOP SLAVE; RESET
SLAVE ALL`, a failure as SIGKILL.

As on RDS, the application's user is no SUPER (read_only holds it back), and it ends other sessions and reads
replica status through definer procedures named as RDS's are (`mysql.rds_kill`, `mysql.rds_replica_status`).
As root the servers run as the package's `mysql` user. Each server listens on its own loopback address
(127.N.1.2, 127.N.1.3, ...). Everything started is stopped, and every directory removed, by `close()`.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess  # nosec B404 - runs MariaDB's own programs on fixed arguments
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .postgres import free_port
from .procs import alive

REPLICATION_USER = "repl"
REPLICATION_PASSWORD = "repl-S3cret-pw"  # noqa: S105 # nosec B105 - a throwaway loopback server's password
# What RDS grants its MariaDB master user (RDS User Guide, "Master user account privileges"): no SUPER, CONNECTION
# ADMIN or READ ONLY ADMIN, so read_only holds it back and it ends others' sessions through mysql.rds_kill.
MASTER_GRANTS = (
    "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, RELOAD, PROCESS, REFERENCES, INDEX, ALTER, SHOW DATABASES, "
    "CREATE TEMPORARY TABLES, LOCK TABLES, EXECUTE, REPLICATION SLAVE, BINLOG MONITOR, CREATE VIEW, SHOW VIEW, "
    "CREATE ROUTINE, ALTER ROUTINE, CREATE USER, EVENT, TRIGGER"
)
RDS_PROCEDURES = (
    "CREATE PROCEDURE mysql.rds_kill(IN thread BIGINT) SQL SECURITY DEFINER KILL thread",
    "CREATE PROCEDURE mysql.rds_replica_status() SQL SECURITY DEFINER SHOW SLAVE STATUS",
)


def available() -> bool:
    return _binary("mariadbd", "/usr/sbin/mariadbd") is not None and _binary("mariadb-install-db", "/usr/bin/mariadb-install-db") is not None


def _binary(name: str, fallback: str) -> str | None:
    return shutil.which(name) or (fallback if os.path.exists(fallback) else None)


def _isolated(datadir: Path) -> list[str]:
    """Options that keep servers on one machine out of each other's way: a temporary directory of its own
    (a starting server deletes the `#sql*` files it finds in its tmpdir: in a shared /tmp, another server's
    temporary tables), and no native AIO (the kernel's aio-max-nr is shared by every server)."""
    tmp = datadir.parent / f"{datadir.name}-tmp"
    tmp.mkdir(mode=0o700, exist_ok=True)
    if os.geteuid() == 0:
        entry = pwd.getpwnam("mysql")
        os.chown(tmp, entry.pw_uid, entry.pw_gid)
    return [f"--tmpdir={tmp}", "--innodb-use-native-aio=0"]


def _as() -> list[str]:
    return ["runuser", "-u", "mysql", "--"] if os.geteuid() == 0 else []


@dataclass
class MariaServer:
    name: str
    datadir: Path
    host: str
    port: int
    server_id: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> str:
        return str(self.datadir.parent / f"{self.name}.sock")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        log = open(self.datadir.parent / f"{self.name}.log", "ab")  # noqa: SIM115 - the server keeps it
        args = [
            f"--datadir={self.datadir}",
            f"--port={self.port}",
            f"--bind-address={self.host}",
            f"--socket={self.socket_path}",
            f"--pid-file={self.datadir.parent}/{self.name}.pid",
            f"--server-id={self.server_id}",
            "--log-bin=mysql-bin-changelog",
            "--log-slave-updates",
            "--binlog-format=ROW",
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=16M",
            "--innodb-log-file-size=8M",
            *_isolated(self.datadir),
            "--skip-log-error",
        ]
        binary = _binary("mariadbd", "/usr/sbin/mariadbd") or "mariadbd"
        self.proc = subprocess.Popen([*_as(), binary, "--no-defaults", *args], stdout=log, stderr=log)  # noqa: S603 # nosec B603
        until = time.monotonic() + 60
        while time.monotonic() < until:
            with suppress(Exception):
                self.sql("SELECT 1")
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"mariadbd {self.name} exited ({self.proc.returncode}); see {log.name}")
            time.sleep(0.1)
        raise RuntimeError(f"mariadbd {self.name} did not start")

    def stop(self, mode: str = "fast") -> None:
        """`immediate` is a crash (SIGKILL); otherwise a clean shutdown."""
        if self.proc is None:
            return
        # The server itself, by its pid file: as root self.proc is runuser, which passes no SIGKILL on.
        server = self._pid()
        for pid in [p for p in (server, self.proc.pid) if p is not None]:
            with suppress(OSError):
                os.kill(pid, signal.SIGKILL if mode == "immediate" else signal.SIGTERM)
        until = time.monotonic() + 30
        while server is not None and alive(server) and time.monotonic() < until:
            time.sleep(0.05)
        if server is not None and alive(server):
            os.kill(server, signal.SIGKILL)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def _pid(self) -> int | None:
        try:
            return int((self.datadir.parent / f"{self.name}.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def connect(self, user: str = "root", password: str | None = None) -> Any:
        import pymysql

        if user == "root":  # the server's own socket (unix_socket authentication), for setting up and faults
            return pymysql.connect(unix_socket=self.socket_path, user="root", autocommit=True)
        return pymysql.connect(host=self.host, port=self.port, user=user, password=password or "", autocommit=True, connect_timeout=5)

    def sql(self, query: str) -> list[dict[str, Any]]:
        import pymysql

        conn = self.connect()
        try:
            with conn.cursor(pymysql.cursors.DictCursor) as cur:
                cur.execute(query)
                return list(cur.fetchall())
        finally:
            conn.close()

    def in_recovery(self) -> bool:
        return bool(self.sql("SHOW SLAVE STATUS"))

    def promote(self) -> None:
        self.sql("STOP SLAVE")
        self.sql("RESET SLAVE ALL")
        self.sql("SET GLOBAL read_only = 0")


@dataclass
class MariaServers:
    base: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="rdsha-maria-", dir="/tmp")))  # nosec B108 - mkdtemp: new and unique
    servers: dict[str, MariaServer] = field(default_factory=dict)
    _next: int = 2

    def __post_init__(self) -> None:
        self.base.chmod(0o755)
        if os.geteuid() == 0:
            entry = pwd.getpwnam("mysql")
            os.chown(self.base, entry.pw_uid, entry.pw_gid)

    def _server(self, name: str) -> MariaServer:
        host = f"127.{20 + os.getpid() % 200}.1.{self._next}"
        server = MariaServer(name, self.base / name, host, free_port(host), self._next)
        self._next += 1
        install = _binary("mariadb-install-db", "/usr/bin/mariadb-install-db") or "mariadb-install-db"
        cmd = [*_as(), install, "--no-defaults", f"--datadir={server.datadir}", "--auth-root-authentication-method=socket", "--skip-test-db"]
        cmd += _isolated(server.datadir)
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603 # nosec B603
        if out.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed: {out.stdout.strip()} {out.stderr.strip()}")
        server.start()
        self.servers[name] = server
        return server

    def primary(self, name: str, user: str, password: str) -> MariaServer:
        """A new primary with the replication user, RDS's procedures and the master user (no SUPER)."""
        server = self._server(name)
        server.sql(f"CREATE USER '{REPLICATION_USER}'@'%' IDENTIFIED BY '{REPLICATION_PASSWORD}'")
        server.sql(f"GRANT REPLICATION SLAVE ON *.* TO '{REPLICATION_USER}'@'%'")
        for procedure in RDS_PROCEDURES:
            server.sql(procedure)
        server.sql(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'")
        server.sql(f"GRANT {MASTER_GRANTS} ON *.* TO '{user}'@'%' WITH GRANT OPTION")
        return server

    def replica(self, name: str, source: MariaServer) -> MariaServer:
        """A replica of `source` from its first event (GTID), read-only as RDS makes its replicas ({TrueIfReplica})."""
        server = self._server(name)
        server.sql(
            f"CHANGE MASTER TO MASTER_HOST='{source.host}', MASTER_PORT={source.port}, MASTER_USER='{REPLICATION_USER}', "
            f"MASTER_PASSWORD='{REPLICATION_PASSWORD}', MASTER_USE_GTID=slave_pos"
        )
        server.sql("SET GLOBAL read_only = 1")
        server.sql("START SLAVE")
        return server

    def wait_streaming(self, primary: MariaServer, names: set[str], seconds: float = 30) -> None:
        until = time.monotonic() + seconds
        target = primary.sql("SELECT @@gtid_binlog_pos AS pos")[0]["pos"]
        while time.monotonic() < until:
            caught = 0
            for name in names:
                status = self.servers[name].sql("SHOW SLAVE STATUS")
                pos = self.servers[name].sql("SELECT @@gtid_slave_pos AS pos")[0]["pos"]
                if status and status[0]["Slave_IO_Running"] == "Yes" and status[0]["Slave_SQL_Running"] == "Yes" and pos == target:
                    caught += 1
            if caught == len(names):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{', '.join(sorted(names))} did not catch up with {primary.name}")

    def close(self) -> None:
        for server in self.servers.values():
            with suppress(Exception):
                server.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)
