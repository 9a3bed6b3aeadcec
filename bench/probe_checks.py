"""Benchmark: what one SQL probe check costs, and how fast the probe calls a dead primary, on real
servers on loopback (PostgreSQL primary + streaming replica, MariaDB primary + replica; the servers of
tests/servers.py, from Debian's packages).

Each check opens a fresh connection (as HealthProbeFunction does), runs its statements and closes.
Reported: median and p95 wall ms over N checks per kind; the time to a verdict on a primary that
refuses connections (stopped) and on one that accepts TCP but never answers (black hole), with the
default timeouts (connect 3 s, statement 2 s) and with 1 s each.

Run: .venv/bin/python bench/probe_checks.py [checks]   (default 50)
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rds_ha.core.config import ProbeConfig  # noqa: E402
from rds_ha.local.postgres import free_port  # noqa: E402
from rds_ha.probe import engines  # noqa: E402
from rds_ha.probe.model import Credentials, EngineError  # noqa: E402
from tests.servers import PROBE_PASSWORD, PROBE_USER, BlackHole, have_mariadb, have_postgres, mariadb_cluster, postgres_cluster  # noqa: E402

ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds-ha/bench"
CREDS = Credentials(PROBE_USER, PROBE_PASSWORD)


def settings(seconds: float | None = None) -> ProbeConfig:
    extra: dict[str, Any] = {} if seconds is None else {"connect_timeout_seconds": seconds, "statement_timeout_seconds": seconds}
    return ProbeConfig(secret_arn=ARN, tls="disable", **extra)


def timed(check: Callable[[], Any]) -> tuple[float, str]:
    started = time.perf_counter()
    try:
        check()
        outcome = "ok"
    except EngineError as exc:
        outcome = exc.kind
    return (time.perf_counter() - started) * 1000, outcome


def series(name: str, check: Callable[[], Any], n: int) -> None:
    runs = [timed(check) for _ in range(n)]
    ms = sorted(r[0] for r in runs)
    outcomes = {r[1] for r in runs}
    print(f"| {name} | {n} | {statistics.median(ms):.1f} | {ms[int(0.95 * (n - 1))]:.1f} | {', '.join(sorted(outcomes))} |")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    if not (have_postgres() and have_mariadb()):
        print("probe checks skipped: PostgreSQL and MariaDB servers are not installed (Debian: postgresql, mariadb-server)")
        return
    s = settings()
    print("| check (fresh connection each) | runs | median ms | p95 ms | outcome |")
    print("| --- | --- | --- | --- | --- |")
    with postgres_cluster(("r1",)) as pg:
        p, r = pg.primary.port, pg.replicas["r1"].port
        series("PostgreSQL primary", lambda: engines.pg_primary("127.0.0.1", p, CREDS, s), n)
        series("PostgreSQL replica", lambda: engines.pg_replica("127.0.0.1", r, CREDS, s), n)
    with mariadb_cluster(("r1",)) as my:
        p, r = my.primary.port, my.replicas["r1"].port
        series("MariaDB primary", lambda: engines.my_primary("127.0.0.1", p, CREDS, s), n)
        series("MariaDB replica", lambda: engines.my_replica("127.0.0.1", r, CREDS, s), n)
    closed = free_port()  # nothing listens: connection refused, as from a stopped instance
    hole = BlackHole()
    try:
        for label, cfg in (("defaults (3 s / 2 s)", settings()), ("1 s / 1 s", settings(1))):
            series(f"PostgreSQL, refused port, {label}", lambda cfg=cfg: engines.pg_primary("127.0.0.1", closed, CREDS, cfg), 5)
            series(f"PostgreSQL, black hole, {label}", lambda cfg=cfg: engines.pg_primary("127.0.0.1", hole.port, CREDS, cfg), 3)
            series(f"MariaDB, black hole, {label}", lambda cfg=cfg: engines.my_primary("127.0.0.1", hole.port, CREDS, cfg), 3)
    finally:
        hole.close()


if __name__ == "__main__":
    main()
