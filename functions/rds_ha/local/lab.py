"""The local lab: moto's RDS instances backed by real PostgreSQL servers on loopback (and MariaDB ones for
instances of engine mariadb/mysql: Debian's server, rds_ha.local.mariadb).

With a lab installed as the fidelity layer's backing, what RDS would do to an instance's server is done
to a real one: CreateDBInstance starts a primary (initdb); CreateDBInstanceReadReplica builds a streaming
replica of its source's server (pg_basebackup -R); PromoteReadReplica's completion promotes it
(pg_promote: standalone, writable); StopDBInstance and DeleteDBInstance stop it. Each instance's Endpoint
is its server's own loopback address and port, so a writer record names a server a client can reach.
A dynamic parameter changed in an instance's DB parameter group is applied to its server as RDS applies it
(PostgreSQL: ALTER SYSTEM and a reload; MariaDB: SET GLOBAL), for the parameters a write fence uses.
`kill()` is a failed primary (`pg_ctl stop -m immediate`); `publish_lag()` puts a ReplicaLag datapoint
for each replica into CloudWatch (AWS/RDS), computed by the lab from the server's replay state
(REPLICA_LAG_SQL: not RDS's own computation, which its documentation does not spell out).
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from typing import Any

from ..adapters.aws import AwsClients
from . import moto_fidelity, sandbox
from .mariadb import MariaServer, MariaServers
from .postgres import PgServer, PgServers

APP_USER = "app"
APP_PASSWORD = "local-moto-only-1"  # noqa: S105 # nosec B105 - the sandbox's master password (moto's and the lab's)

# A replica's lag as the lab reports it: 0 when it has replayed all it received, else the seconds since
# the last transaction it replayed (PostgreSQL's own measure, pg_last_xact_replay_timestamp).
REPLICA_LAG_SQL = (
    "SELECT CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
    "ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) END"
)


Server = PgServer | MariaServer


def _mysql_family(engine: str) -> bool:
    return engine in ("mysql", "mariadb")


def _set_read_only(server: MariaServer, on: bool) -> None:
    with suppress(Exception):  # a server stopped meanwhile: nothing to apply it to
        server.sql(f"SET GLOBAL read_only = {1 if on else 0}")


class PgLab:
    """Real servers behind moto's RDS instances; `install()` makes the fidelity layer use it."""

    def __init__(self, servers: PgServers | None = None) -> None:
        self.servers = servers or PgServers()
        self._maria: MariaServers | None = None

    @property
    def maria(self) -> MariaServers:
        if self._maria is None:
            self._maria = MariaServers()
        return self._maria

    def install(self, fidelity: moto_fidelity.Fidelity) -> PgLab:
        fidelity.backing = self
        return self

    def _all(self) -> dict[str, Server]:
        out: dict[str, Server] = dict(self.servers.servers)
        if self._maria is not None:
            out.update(self._maria.servers)
        return out

    def server(self, instance_id: str) -> Any:
        return self._all()[instance_id]

    # -- what the fidelity layer tells it --------------------------------------------------------
    def primary(self, db: Any) -> None:
        if _mysql_family(db.engine):
            db.port = self.maria.primary(db.db_instance_identifier, APP_USER, APP_PASSWORD).port
            return
        server = self.servers.primary(db.db_instance_identifier)
        server.sql(f"CREATE ROLE {APP_USER} WITH LOGIN SUPERUSER PASSWORD '{APP_PASSWORD}'")
        db.port = server.port

    def replica(self, db: Any, source: Any) -> None:
        origin = self._all().get(source.db_instance_identifier)
        if origin is None:
            return  # a source the lab does not back (another region's, say): the replica stays a record
        if isinstance(origin, MariaServer):
            db.port = self.maria.replica(db.db_instance_identifier, origin).port
            return
        db.port = self.servers.replica(db.db_instance_identifier, origin).port

    def promoted(self, db: Any) -> None:
        server = self._all().get(db.db_instance_identifier)
        if server is not None and server.running and server.in_recovery():
            server.promote()

    def gone(self, instance_id: str) -> None:
        server = self._all().get(instance_id)
        if server is not None:
            with suppress(RuntimeError):
                server.stop("fast")

    def address(self, instance_id: str) -> str | None:
        server = self._all().get(instance_id)
        return server.host if server is not None else None

    def parameters(self, db: Any, values: dict[str, str | None]) -> None:
        """A parameter group's dynamic change, applied to the instance's server (the fence's parameters)."""
        server = self._all().get(db.db_instance_identifier)
        if server is None or not server.running:
            return
        if isinstance(server, MariaServer):
            if "read_only" in values:
                wanted = values["read_only"]
                on = server.in_recovery() if wanted == "{TrueIfReplica}" else wanted in ("1", "ON", "on", "true")
                # As RDS applies it: in its own time, after the API call returned (SET GLOBAL read_only waits for
                # the statements running when it is issued).
                threading.Thread(target=_set_read_only, args=(server, on), daemon=True, name="lab-read-only").start()
            return
        if "default_transaction_read_only" in values:
            on = values["default_transaction_read_only"] in ("1", "on", "true")
            server.sql(f"ALTER SYSTEM SET default_transaction_read_only = {'on' if on else 'off'}")
            server.sql("SELECT pg_reload_conf()")

    # -- what a test or the demo does ------------------------------------------------------------
    def ready(self, primary: str, replicas: set[str]) -> None:
        """Until `replicas` stream from `primary`; a MariaDB primary also gets the application's database `app`."""
        server = self.server(primary)
        if isinstance(server, MariaServer):
            server.sql("CREATE DATABASE IF NOT EXISTS app")
            self.maria.wait_streaming(server, replicas)
        else:
            self.servers.wait_streaming(server, replicas)

    def kill(self, instance_id: str, region: str = sandbox.REGION) -> None:
        """The instance fails: its server crashes, RDS shows it `failed`."""
        self.server(instance_id).stop("immediate")
        moto_fidelity.set_status(instance_id, "failed", region)

    def hang(self, instance_id: str, frozen: bool = True) -> None:
        """The instance's server stops answering, its connections open and silent (a black-holed primary:
        every process of a PostgreSQL server SIGSTOPped); `frozen=False` lets it go on."""
        server = self.servers.servers[instance_id]
        postmaster = int((server.datadir / "postmaster.pid").read_text().split()[0])
        pids = [postmaster]
        for entry in filter(str.isdigit, os.listdir("/proc")):
            with suppress(OSError, ValueError, IndexError):
                if int(Path(f"/proc/{entry}/stat").read_text().split(")")[-1].split()[1]) == postmaster:
                    pids.append(int(entry))
        for pid in pids:
            os.kill(pid, signal.SIGSTOP if frozen else signal.SIGCONT)

    def publish_lag(self, clients: AwsClients, at: datetime) -> dict[str, float]:
        """Each running replica's ReplicaLag datapoint at `at` (the lab's measure: REPLICA_LAG_SQL, Seconds_Behind_Master)."""
        out: dict[str, float] = {}
        for name, server in self.servers.servers.items():
            if server.running and server.in_recovery():
                out[name] = float(server.sql(REPLICA_LAG_SQL)[0][0])
                sandbox.put_lag(clients, name, out[name], at)
        for name, maria in (self._maria.servers if self._maria is not None else {}).items():
            status = maria.sql("SHOW SLAVE STATUS") if maria.running else []
            if status:  # MariaDB's own measure: Seconds_Behind_Master
                out[name] = float(status[0].get("Seconds_Behind_Master") or 0)
                sandbox.put_lag(clients, name, out[name], at)
        return out

    def close(self) -> None:
        self.servers.close()
        if self._maria is not None:
            self._maria.close()
