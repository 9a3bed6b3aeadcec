"""What the probe asks each engine, over a fresh connection with short timeouts.

The drivers (psycopg 3 for PostgreSQL, PyMySQL for MySQL and MariaDB) are imported here, inside the
functions that connect, and this module is imported only by the probe: no other function's cold start
pays for them.

Every check opens its own connection: an instance that keeps an old session alive but refuses new
ones (max_connections reached, a listener gone) is not healthy for the application either.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..core.config import ProbeConfig
from ..observability import logger
from .model import Credentials, EngineError, ErrorKind, PrimaryCheck, ReplicaCheck

# PostgreSQL SQLSTATEs and MySQL error numbers that say the probe, not the database, is wrong: a wrong
# password after a rotation must not look like a dead primary (it would trigger a failover).
_PG_PROBE_SIDE = {"28P01": "auth", "28000": "auth", "3D000": "config", "42501": "config"}
_MY_PROBE_SIDE = {1045: "auth", 1044: "config", 1049: "config", 1227: "config", 1142: "config", 1698: "auth"}
_PG_AUTH_TEXT = ("password authentication failed", "no pg_hba.conf entry", "pam authentication failed")
_PG_CONFIG_TEXT = ("does not exist", "server does not support ssl", "certificate", "sslmode")


def kind_pg(exc: Exception) -> ErrorKind:
    state = getattr(exc, "sqlstate", None)
    if state in _PG_PROBE_SIDE:
        return _PG_PROBE_SIDE[state]  # type: ignore[return-value]
    text = str(exc).lower()
    if any(t in text for t in _PG_AUTH_TEXT):
        return "auth"
    if any(t in text for t in _PG_CONFIG_TEXT):
        return "config"
    return "down"


def kind_my(exc: Exception) -> ErrorKind:
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    return _MY_PROBE_SIDE.get(code, "down") if code is not None else "down"  # type: ignore[return-value]


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


@contextmanager
def classified(kind_of: Callable[[Exception], ErrorKind]) -> Iterator[None]:
    """Every driver failure becomes a probe result: the database is down, or the probe is misconfigured."""
    try:
        yield
    except EngineError:
        raise
    except Exception as exc:  # noqa: BLE001 - drivers raise many types; each is classified, none escapes
        raise EngineError(kind_of(exc), _first_line(exc)) from exc


# -- PostgreSQL ---------------------------------------------------------------------------------

_PG_PRIMARY = """
SELECT pg_is_in_recovery(),
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0') END
"""
# Bytes each streaming replica has not replayed, as the primary sees it (application_name names the replica).
_PG_REPLICATION = "SELECT application_name, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) FROM pg_stat_replication"
_PG_REPLICA = """
SELECT pg_is_in_recovery(),
       pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0'),
       pg_wal_lsn_diff(pg_last_wal_receive_lsn(), '0/0'),
       EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()),
       CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END,
       (SELECT status FROM pg_stat_wal_receiver LIMIT 1),
       (SELECT EXTRACT(EPOCH FROM now() - last_msg_receipt_time) FROM pg_stat_wal_receiver LIMIT 1)
"""


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def _ca(settings: ProbeConfig) -> str | None:
    """The CA bundle for verify-full; a missing one is a configuration error, said in one line."""
    if settings.tls != "verify-full":
        return None
    path = settings.ca_path
    if not os.path.isfile(path):
        raise EngineError("config", f"tls verify-full: CA bundle {path} not found (the RDS bundle: make probe-ca before sam build; or set probe.ca_bundle)")
    return path


def pg_connect(host: str, port: int, creds: Credentials, settings: ProbeConfig, read_only: bool = True, application_name: str | None = None) -> Any:
    import psycopg  # the probe's own dependency: imported on first use

    ca = _ca(settings)
    statement_ms = max(1, int(settings.statement_timeout_seconds * 1000))
    return psycopg.connect(
        host=host,
        port=port,
        user=creds.username,
        password=creds.password,
        dbname=settings.database or "postgres",
        # libpq counts connect_timeout in whole seconds (at least 2) over the whole startup, greeting included.
        connect_timeout=max(2, math.ceil(settings.connect_timeout_seconds)),
        sslmode=settings.tls,  # libpq's own names: require, verify-full, disable
        sslrootcert=ca,
        application_name=application_name or ("rds-ha-probe" if read_only else "rds-ha-drill"),
        # The health probe never writes; the drill's client does (read_only=False).
        options=f"-c statement_timeout={statement_ms}" + (" -c default_transaction_read_only=on" if read_only else ""),
        # A peer that stops answering mid-query is given up after this (kernel-level), not waited on forever.
        tcp_user_timeout=statement_ms + 1000,
        keepalives=1,
        keepalives_idle=1,
        keepalives_interval=1,
        keepalives_count=2,
        autocommit=True,
    )


def pg_primary(host: str, port: int, creds: Credentials, settings: ProbeConfig) -> PrimaryCheck:
    with classified(kind_pg), pg_connect(host, port, creds, settings) as conn:
        row = conn.execute(_PG_PRIMARY).fetchone()
        in_recovery, position = bool(row[0]), _num(row[1])
        behind: dict[str, float] = {}
        if not in_recovery:
            for name, lag_bytes in conn.execute(_PG_REPLICATION).fetchall():
                if name and lag_bytes is not None:
                    behind[str(name)] = max(0.0, float(lag_bytes))
    return PrimaryCheck(writable=not in_recovery, position=position, replica_bytes=behind)


def pg_replica(host: str, port: int, creds: Credentials, settings: ProbeConfig) -> ReplicaCheck:
    with classified(kind_pg), pg_connect(host, port, creds, settings) as conn:
        row = conn.execute(_PG_REPLICA).fetchone()
    in_recovery, replayed, received, since_replay, paused, receiver, since_message = row
    if not in_recovery:
        return ReplicaCheck(replicating=False, broken_reason="not in recovery: promoted or standalone, no longer a replica")
    return ReplicaCheck(
        replicating=True,
        position=_num(replayed),
        received=_num(received),
        since_last_replay=_num(since_replay),
        receiving=receiver == "streaming",
        since_last_message=_num(since_message),
        note="WAL replay paused" if paused else None,
    )


# -- MySQL and MariaDB --------------------------------------------------------------------------

_BINLOG_SEQ = re.compile(r"\.(\d+)$")


def binlog_position(file: str | None, pos: Any) -> float | None:
    """A binlog coordinate as one comparable number (file sequence << 32 | offset; a binlog is < 4 GiB)."""
    if not file or pos is None:
        return None
    match = _BINLOG_SEQ.search(str(file))
    return float((int(match.group(1)) << 32) | int(pos)) if match else None


def _field(row: Mapping[str, Any], *names: str) -> Any:
    """A column under its MySQL 8.0.22+ name or its older (and MariaDB) name."""
    for name in names:
        if name in row:
            return row[name]
    return None


def my_connect(host: str, port: int, creds: Credentials, settings: ProbeConfig) -> Any:
    import pymysql  # the probe's own dependency: imported on first use

    ssl: dict[str, Any] | None = None
    ca = _ca(settings)
    if settings.tls == "require":
        ssl = {"check_hostname": False}  # encrypted, server not verified (sslmode=require)
    elif settings.tls == "verify-full":
        ssl = {"ca": ca, "check_hostname": True}
    return pymysql.connect(
        host=host,
        port=port,
        user=creds.username,
        password=creds.password,
        database=settings.database,
        connect_timeout=settings.connect_timeout_seconds,
        # The server's greeting and every answer: a black-holed port fails here instead of hanging.
        read_timeout=settings.statement_timeout_seconds,
        write_timeout=settings.statement_timeout_seconds,
        ssl=ssl,
        autocommit=True,
        program_name="rds-ha-probe",
    )


def _my_rows(conn: Any, query: str) -> list[dict[str, Any]]:
    import pymysql

    with conn.cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute(query)
        return list(cur.fetchall())


def _my_first(conn: Any, *queries: str) -> list[dict[str, Any]]:
    """The first of equivalent statements the server knows (MySQL 8.4 renamed SHOW MASTER/SLAVE)."""
    import pymysql

    last: Exception | None = None
    for query in queries:
        try:
            return _my_rows(conn, query)
        except pymysql.err.ProgrammingError as exc:  # 1064: syntax unknown to this version
            last = exc
    assert last is not None
    raise last


def my_primary(host: str, port: int, creds: Credentials, settings: ProbeConfig) -> PrimaryCheck:
    with classified(kind_my), my_connect(host, port, creds, settings) as conn:
        read_only = _my_rows(conn, "SELECT @@global.read_only AS ro")[0]["ro"]
        position: float | None = None
        sizes: tuple[tuple[str, int], ...] = ()
        try:
            status = _my_first(conn, "SHOW BINARY LOG STATUS", "SHOW MASTER STATUS")
            logs = _my_first(conn, "SHOW BINARY LOGS")
            if status:
                position = binlog_position(status[0].get("File"), status[0].get("Position"))
            sizes = tuple((str(r["Log_name"]), int(r["File_size"])) for r in logs)
        except Exception as exc:  # noqa: BLE001 - no REPLICATION CLIENT grant, or binlog off: no byte lag; health is still known
            logger.debug(f"no binlog position from {host}: {_first_line(exc)}")
    return PrimaryCheck(writable=int(read_only) == 0, position=position, binlogs=sizes)


def replica_status(conn: Any) -> list[dict[str, Any]]:
    """SHOW REPLICA STATUS, or RDS's `mysql.rds_replica_status` where the login may not run it (RDS for MariaDB
    10.5+ gives its master user no REPLICATION REPLICA ADMIN; RDS User Guide, "mysql.rds_replica_status")."""
    import pymysql

    try:
        return _my_first(conn, "SHOW REPLICA STATUS", "SHOW SLAVE STATUS")
    except pymysql.err.OperationalError as exc:
        if not exc.args or exc.args[0] not in (1227, 1142):  # access denied
            raise
        return _my_rows(conn, "CALL mysql.rds_replica_status")


def my_replica(host: str, port: int, creds: Credentials, settings: ProbeConfig) -> ReplicaCheck:
    with classified(kind_my), my_connect(host, port, creds, settings) as conn:
        rows = replica_status(conn)
    if not rows:
        return ReplicaCheck(replicating=False, broken_reason="no replication configured (SHOW REPLICA STATUS is empty)")
    row = rows[0]
    io = str(_field(row, "Replica_IO_Running", "Slave_IO_Running") or "No")
    sql = str(_field(row, "Replica_SQL_Running", "Slave_SQL_Running") or "No")
    behind = _field(row, "Seconds_Behind_Source", "Seconds_Behind_Master")
    exec_file = _field(row, "Relay_Source_Log_File", "Relay_Master_Log_File")
    exec_pos = _field(row, "Exec_Source_Log_Pos", "Exec_Master_Log_Pos")
    read_file = _field(row, "Source_Log_File", "Master_Log_File")
    read_pos = _field(row, "Read_Source_Log_Pos", "Read_Master_Log_Pos")
    error = str(_field(row, "Last_SQL_Error") or _field(row, "Last_IO_Error") or "").strip()
    return ReplicaCheck(
        replicating=True,
        position=binlog_position(exec_file, exec_pos),
        received=binlog_position(read_file, read_pos),
        seconds_behind=_num(behind),
        receiving=io == "Yes",
        applying=sql == "Yes",
        exec_file=str(exec_file) if exec_file else None,
        exec_offset=int(exec_pos) if exec_pos is not None else None,
        note=f"IO thread {io}, SQL thread {sql}" + (f": {error[:200]}" if error else ""),
    )


@dataclass(frozen=True)
class Engine:
    name: str
    primary: Any
    replica: Any


ENGINES = {
    "postgres": Engine("postgres", pg_primary, pg_replica),
    "mysql": Engine("mysql", my_primary, my_replica),
    "mariadb": Engine("mariadb", my_primary, my_replica),
}


def engine_for(rds_engine: str) -> Engine | None:
    """RDS's Engine field ("postgres", "mysql", "mariadb"; Aurora is not an rds-ha cluster)."""
    return ENGINES.get(rds_engine)
