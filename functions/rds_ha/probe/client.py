"""A client that writes and reads through the writer name during a drill, as an application would:
every attempt opens a fresh connection to wherever the writer name leads *now*, inserts one
numbered row (acknowledged when the commit returns), and reads it back. Afterwards it reads every row
of the drill back from the (new) primary: an acknowledged write that is missing is a lost write.

What it reports is what the application saw: write downtime (from the last acknowledged write
before an outage to the first one after it) and lost acknowledged writes. Its rows live in a table
`rds_ha_drill` (created if missing) keyed by the drill's id.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..core.config import ProbeConfig
from .engines import classified, kind_my, kind_pg, my_connect, pg_connect
from .model import Credentials, EngineError

_DDL = {
    "postgres": "CREATE TABLE IF NOT EXISTS rds_ha_drill (drill text NOT NULL, seq bigint NOT NULL, at timestamptz NOT NULL DEFAULT now(), "
    "PRIMARY KEY (drill, seq))",
    "mysql": "CREATE TABLE IF NOT EXISTS rds_ha_drill (drill varchar(64) NOT NULL, seq bigint NOT NULL, "
    "at timestamp(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), PRIMARY KEY (drill, seq))",
}
_INSERT = "INSERT INTO rds_ha_drill (drill, seq) VALUES (%s, %s)"
_READ_BACK = "SELECT max(seq) FROM rds_ha_drill WHERE drill = %s"
_ALL = "SELECT seq FROM rds_ha_drill WHERE drill = %s"

# Where the writer name leads now: (host, port, what to call it in the report).
Target = Callable[[], tuple[str, int, str]]


@dataclass(frozen=True)
class Attempt:
    at: datetime
    seq: int
    ok: bool
    target: str
    error: str | None = None


@dataclass
class Outage:
    start: str
    end: str | None
    seconds: float | None
    failed_attempts: int
    first_error: str


@dataclass
class ClientReport:
    attempts: int
    acknowledged: int
    failed: int
    write_downtime_seconds: float
    longest_outage_seconds: float | None
    outages: list[Outage] = field(default_factory=list)
    lost_writes: int = 0
    lost_sample: list[int] = field(default_factory=list)
    verified: bool = False
    verify_error: str | None = None
    targets: list[str] = field(default_factory=list)


class WriteProbe:
    def __init__(self, engine: str, creds: Credentials, settings: ProbeConfig, database: str | None, target: Target) -> None:
        self.family = "postgres" if engine == "postgres" else "mysql"
        self.creds, self.settings, self.target = creds, settings, target
        self.database = database or ("postgres" if self.family == "postgres" else None)
        if self.database is None:
            raise EngineError("config", "MySQL/MariaDB needs a database for the drill's table: dbname in the secret, or probe.database")
        self.settings = settings.model_copy(update={"database": self.database})
        self.drill = uuid.uuid4().hex[:16]
        self.attempts: list[Attempt] = []

    def _connect(self, host: str, port: int) -> Any:
        if self.family == "postgres":
            return pg_connect(host, port, self.creds, self.settings, read_only=False)
        return my_connect(host, port, self.creds, self.settings)

    def _run(self, statements: list[tuple[str, tuple[Any, ...]]]) -> list[Any]:
        host, port, _ = self.target()
        kind = kind_pg if self.family == "postgres" else kind_my
        rows: list[Any] = []
        with classified(kind), self._connect(host, port) as conn:
            cur = conn.cursor()
            try:
                for sql, params in statements:
                    cur.execute(sql, params)
                    rows = list(cur.fetchall()) if cur.description else []
            finally:
                cur.close()
        return rows

    def prepare(self) -> None:
        """Before the drill: the writer name must take writes now, or the drill measures nothing."""
        self._run([(_DDL[self.family], ())])

    def step(self, now: datetime) -> None:
        """One write and its read-back, through wherever the writer name leads now."""
        seq = len(self.attempts) + 1
        where = "?"
        try:
            where = self.target()[2]
            rows = self._run([(_INSERT, (self.drill, seq)), (_READ_BACK, (self.drill,))])
            if not rows or rows[0][0] is None or int(rows[0][0]) < seq:
                raise EngineError("down", f"wrote seq {seq} but read back {rows[0][0] if rows else None}")
            self.attempts.append(Attempt(now, seq, True, where))
        except EngineError as exc:
            self.attempts.append(Attempt(now, seq, False, where, str(exc)))
        except Exception as exc:  # noqa: BLE001 - a drill's client never stops the drill; it records what failed
            self.attempts.append(Attempt(now, seq, False, where, f"{type(exc).__name__}: {exc}"))

    def report(self) -> ClientReport:
        """Outages, and the acknowledged writes the writer name's primary does not have now."""
        acked = [a for a in self.attempts if a.ok]
        rep = ClientReport(
            attempts=len(self.attempts),
            acknowledged=len(acked),
            failed=len(self.attempts) - len(acked),
            write_downtime_seconds=0.0,
            longest_outage_seconds=None,
        )
        rep.targets = list(dict.fromkeys(a.target for a in self.attempts))
        last_ok: Attempt | None = None
        current: list[Attempt] = []
        for attempt in self.attempts:
            if not attempt.ok:
                current.append(attempt)
                continue
            if current:
                start = last_ok.at if last_ok is not None else current[0].at
                secs = (attempt.at - start).total_seconds()
                rep.outages.append(Outage(start.isoformat(), attempt.at.isoformat(), secs, len(current), current[0].error or ""))
                current = []
            last_ok = attempt
        if current:  # not recovered by the end of the drill
            start = last_ok.at if last_ok is not None else current[0].at
            rep.outages.append(Outage(start.isoformat(), None, None, len(current), current[0].error or ""))
        closed = [o.seconds for o in rep.outages if o.seconds is not None]
        rep.write_downtime_seconds = round(sum(closed), 3)
        rep.longest_outage_seconds = max(closed) if closed else None
        try:
            present = {int(r[0]) for r in self._run([(_ALL, (self.drill,))])}
            lost = sorted(a.seq for a in acked if a.seq not in present)
            rep.lost_writes, rep.lost_sample, rep.verified = len(lost), lost[:20], True
        except EngineError as exc:
            rep.verify_error = str(exc)
        return rep
