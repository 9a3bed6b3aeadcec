"""The local lab: a failover of real PostgreSQL servers behind moto's RDS (rds_ha.local.lab)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rds_ha.handlers.failover import handler
from rds_ha.handlers.reconcile import handler as reconcile_handler
from rds_ha.local.lab import APP_PASSWORD, APP_USER, PgLab
from rds_ha.local.postgres import PgServer

from ..builders import Sandbox, alarm_event, build_cluster, context
from .test_probe import _require


def _writer(aws: Sandbox, lab: PgLab) -> PgServer:
    """The server the writer record names, as a client that resolves it reaches it."""
    (address,) = aws.writer_targets()
    return next(s for s in lab.servers.servers.values() if s.host == address)


def _client(server: PgServer) -> Any:
    return server.connect(APP_USER, APP_PASSWORD)


def _replayed(lab: PgLab, primary: PgServer, replicas: list[str], seconds: float = 30) -> None:
    until = time.monotonic() + seconds
    target = primary.sql("SELECT pg_current_wal_lsn()")[0][0]
    while time.monotonic() < until:
        if all(lab.server(r).sql(f"SELECT pg_last_wal_replay_lsn() >= '{target}'")[0][0] for r in replicas):
            return
        time.sleep(0.05)
    raise AssertionError(f"{replicas} did not replay up to {target}")


def test_a_killed_primary_is_failed_over_for_real_and_no_acknowledged_write_is_lost(aws: Sandbox, lab: PgLab) -> None:
    build_cluster(aws)  # orders-db and its replicas r1 (12 s behind by CloudWatch) and r2 (2 s) are real servers
    primary = lab.server("orders-db")
    lab.servers.wait_streaming(primary, {"orders-db-r1", "orders-db-r2"})
    assert _writer(aws, lab) is primary and aws.endpoint("orders-db") == primary.host
    with _client(_writer(aws, lab)) as conn:
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY)")
        for n in range(50):
            conn.execute("INSERT INTO orders VALUES (%s)", (n,))  # each acknowledged (autocommit)
    _replayed(lab, primary, ["orders-db-r1", "orders-db-r2"])

    lab.kill("orders-db")
    handler(alarm_event("eventbridge", aws.clock.now()), context())
    for _ in range(30):  # the schedule's reconciles finish it; CloudWatch reports the new replicas' lag
        if aws.state().workflow is None:
            break
        aws.clock.advance(60)
        lab.publish_lag(aws.clients, aws.clock.now())
        reconcile_handler({}, context())

    assert aws.state().workflow is None and aws.state().primary == "orders-db-r2"
    new = _writer(aws, lab)
    assert new is lab.server("orders-db-r2") and not new.in_recovery()  # promoted for real, and the writer names it
    with _client(new) as conn:
        assert [r[0] for r in conn.execute("SELECT id FROM orders ORDER BY id")] == list(range(50))
        conn.execute("INSERT INTO orders VALUES (50)")  # writable behind the writer name
    rebuilt = sorted(n for n in lab.servers.servers if n.startswith("orders-") and n.count("-") == 2 and not n.startswith("orders-db"))
    assert len(rebuilt) == 2, sorted(lab.servers.servers)
    lab.servers.wait_streaming(new, set(rebuilt))  # redundancy rebuilt from the new primary, streaming from it
    assert not lab.server("orders-db-r1").running  # the orphan was deleted: its server is stopped


def test_closing_the_lab_leaves_no_server_running(aws: Sandbox, lab: PgLab) -> None:
    """As root the servers run under runuser, which passes no SIGKILL on: a kill must reach the server itself."""
    import os

    from rds_ha.local import mariadb, sandbox

    _require(mariadb.available(), "MariaDB")
    sandbox.create_cluster(aws.clients, aws.clock.now(), {"orders-db-r1": ("us-east-1b", 0.0)}, engine="mariadb")
    sandbox.create_cluster(aws.clients, aws.clock.now(), {"pg-r1": ("us-east-1b", 0.0)}, primary="pg-db")
    bases = [str(lab.maria.base), str(lab.servers.base)]
    lab.kill("orders-db")  # a crash of one, then everything closed
    lab.close()

    def running() -> list[str]:
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if any(base in cmdline for base in bases):
                found.append(cmdline[:120])
        return found

    assert running() == []
