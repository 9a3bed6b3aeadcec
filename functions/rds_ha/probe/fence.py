"""The SQL of a switchover's write fence (switchover.fence), with what RDS lets the master user do:

- Is the fence in effect? A new session's `default_transaction_read_only` (PostgreSQL) or `@@global.read_only`
  (MySQL/MariaDB): RDS applies the parameter group's dynamic change by itself, in its own time.
- Seal: end sessions (PostgreSQL: every other client session, `pg_terminate_backend`: rds_superuser may end
  any session but the superuser `rdsadmin`'s, so a session that set `default_transaction_read_only=off` itself
  before the fence is gone too; MySQL/MariaDB: every one inside a transaction, `CALL mysql.rds_kill`, RDS's
  stand-in for KILL, which the master user, lacking SUPER, may not run on others' threads), wait until they are
  gone, and read the final write position (`pg_current_wal_lsn()`; the binlog coordinate of SHOW BINARY LOG
  STATUS). Once the fence is in effect a transaction that starts is read-only; one that started before may still
  commit, hence the end of every open one before the position is read.
- Before the fence (PostgreSQL): role and database settings of `default_transaction_read_only`
  (`ALTER ROLE ... SET`, `ALTER DATABASE ... SET`, pg_db_role_setting) outrank the parameter group for every new
  session of that role or database: the fence is refused while one exists.
- Unblock (MySQL/MariaDB): `SET GLOBAL read_only = 1`, as RDS applies the parameter, waits for statements
  running when it is issued (and new writes queue behind it): while it has not taken effect, the sessions inside
  a transaction are ended (they would be at the seal anyway).
- Replayed: the replica's replay position in the same measure (`pg_last_wal_replay_lsn()`; the executed
  binlog coordinate of SHOW REPLICA STATUS, or `mysql.rds_replica_status` on RDS for MariaDB 10.5+, whose
  master user may not run SHOW REPLICA STATUS).

Drivers are imported by `engines` on first use, as for the probe.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..core.config import FenceConfig
from ..core.models import Instance
from .engines import _field, _my_first, _my_rows, binlog_position, classified, kind_my, kind_pg, my_connect, pg_connect, replica_status
from .model import Credentials, EngineError

# How long ended sessions may take to be gone before the seal fails (and is tried again).
GONE_SECONDS = 10.0

_PG_OTHERS = """
SELECT pid FROM pg_stat_activity
 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND usename IS DISTINCT FROM 'rdsadmin'
"""
_PG_OVERRIDES = """
SELECT coalesce(r.rolname, '(every role)'), coalesce(d.datname, '(every database)'), c
  FROM pg_db_role_setting s
  LEFT JOIN pg_roles r ON r.oid = s.setrole
  LEFT JOIN pg_database d ON d.oid = s.setdatabase
  CROSS JOIN LATERAL unnest(s.setconfig) AS c
 WHERE c ILIKE 'default_transaction_read_only=%'
"""
# Open transactions of client sessions: not ours, not RDS's own (rdsadmin's heartbeat, replication, system threads).
_MY_OPEN = """
SELECT t.trx_mysql_thread_id AS id FROM information_schema.innodb_trx t
  JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id
 WHERE t.trx_mysql_thread_id <> CONNECTION_ID() AND p.user NOT IN ('rdsadmin', 'rdsrepladmin', 'system user', 'event_scheduler')
"""
_MY_NO_PROCEDURE = 1305  # mysql.rds_kill exists on RDS only: elsewhere (the local lab) KILL does the same
_MY_UNKNOWN_THREAD = 1094


class SqlFence:
    def __init__(self, cfg: FenceConfig, credentials: Callable[[Instance], Credentials], clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = cfg.connection()
        self._credentials = credentials
        self._clock = clock

    def _where(self, instance: Instance) -> tuple[str, int, Credentials]:
        if not instance.endpoint or not instance.port:
            raise EngineError("config", f"{instance.id} has no endpoint yet")
        return instance.endpoint, instance.port, self._credentials(instance)

    def _pg(self, instance: Instance) -> Any:
        host, port, creds = self._where(instance)
        return pg_connect(host, port, creds, self.settings, read_only=False, application_name="rds-ha-fence")

    def _my(self, instance: Instance) -> Any:
        host, port, creds = self._where(instance)
        return my_connect(host, port, creds, self.settings)

    def frozen(self, instance: Instance) -> bool:
        if instance.engine.startswith("postgres"):
            with classified(kind_pg), self._pg(instance) as conn:
                return str(conn.execute("SHOW default_transaction_read_only").fetchone()[0]) == "on"
        with classified(kind_my), self._my(instance) as conn:
            return int(_my_rows(conn, "SELECT @@global.read_only AS ro")[0]["ro"]) == 1

    def seal(self, instance: Instance) -> float:
        if instance.engine.startswith("postgres"):
            return self._seal_pg(instance)
        return self._seal_my(instance)

    def _seal_pg(self, instance: Instance) -> float:
        with classified(kind_pg), self._pg(instance) as conn:
            pids = [int(r[0]) for r in conn.execute(_PG_OTHERS).fetchall()]
            for pid in pids:
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
            self._gone(lambda: conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,)).fetchone()[0], instance)
            return float(conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')").fetchone()[0])

    def overrides(self, instance: Instance) -> tuple[str, ...]:
        if not instance.engine.startswith("postgres"):
            return ()
        with classified(kind_pg), self._pg(instance) as conn:
            rows = conn.execute(_PG_OVERRIDES).fetchall()
        return tuple(f"{setting} for role {role} in database {database}" for role, database, setting in rows)

    def unblock(self, instance: Instance) -> int:
        if instance.engine.startswith("postgres"):
            return 0  # (its parameter is a default, applied by a reload: nothing waits for a session)
        with classified(kind_my), self._my(instance) as conn:
            return len(self._end_open_my(conn, instance))

    def _end_open_my(self, conn: Any, instance: Instance) -> set[int]:
        """End every session inside a transaction (not ours, not RDS's own) and wait until they are gone."""
        import pymysql

        ids = [int(r["id"]) for r in _my_rows(conn, _MY_OPEN)]
        for thread in ids:
            try:
                _my_end(conn, "CALL mysql.rds_kill(%s)", thread)
            except pymysql.err.MySQLError as exc:
                if not exc.args or exc.args[0] != _MY_NO_PROCEDURE:
                    raise
                _my_end(conn, "KILL %s", thread)
        ended = set(ids)
        self._gone(lambda: len(ended & {int(r["id"]) for r in _my_rows(conn, "SELECT id FROM information_schema.processlist")}), instance)
        return ended

    def _seal_my(self, instance: Instance) -> float:
        with classified(kind_my), self._my(instance) as conn:
            self._end_open_my(conn, instance)
            status = _my_first(conn, "SHOW BINARY LOG STATUS", "SHOW MASTER STATUS")
            position = binlog_position(status[0].get("File"), status[0].get("Position")) if status else None
        if position is None:
            raise EngineError("config", f"{instance.id} has no binary log position (binary logging off?): its replicas' progress cannot be compared")
        return position

    def _gone(self, remaining: Callable[[], Any], instance: Instance) -> None:
        until = self._clock() + GONE_SECONDS
        while int(remaining()) > 0:
            if self._clock() > until:
                raise EngineError("down", f"sessions ended on {instance.id} were still there after {GONE_SECONDS:g}s")
            time.sleep(0.05)

    def replayed(self, instance: Instance) -> float | None:
        if instance.engine.startswith("postgres"):
            with classified(kind_pg), self._pg(instance) as conn:
                row = conn.execute("SELECT pg_is_in_recovery(), pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')").fetchone()
            return float(row[1]) if row[0] and row[1] is not None else None
        with classified(kind_my), self._my(instance) as conn:
            rows = replica_status(conn)
        if not rows:
            return None
        row = rows[0]
        return binlog_position(_field(row, "Relay_Source_Log_File", "Relay_Master_Log_File"), _field(row, "Exec_Source_Log_Pos", "Exec_Master_Log_Pos"))


def _my_end(conn: Any, statement: str, thread: int) -> None:
    """End a session; one gone already (it ended by itself meanwhile) is no error."""
    import pymysql

    try:
        with conn.cursor() as cur:
            cur.execute(statement, (thread,))
    except pymysql.err.MySQLError as exc:
        if not exc.args or exc.args[0] != _MY_UNKNOWN_THREAD:
            raise
