"""From raw checks to verdicts: is the primary healthy, is each replica's replication broken, how far
behind is it in seconds and in bytes. Pure: no I/O, so every rule is tested without servers.

Rules an operator can rely on:
- A primary that does not answer is unhealthy only if the probe reached at least one replica of the
  cluster: a probe cut off from everything (its own subnet, its own NAT) withholds its judgement
  instead of triggering a failover. Wrong credentials or settings also withhold it (a password
  rotation is not an outage) and are counted as probe errors.
- A replica whose source is down is not "broken": its receiver stops by design. Broken is: no longer a
  replica, the apply thread stopped, or (while the primary answers) the receiving thread stopped.
- Lag in bytes is measured against the primary's newest position; when the primary cannot be read,
  against the furthest replica (which then reads 0): the ranking a failover needs.
- An idle PostgreSQL source makes `now() - pg_last_xact_replay_timestamp()` grow without any lag: a
  replica that has replayed everything it received, and is 0 bytes behind, is 0 seconds behind.
"""

from __future__ import annotations

from datetime import datetime

from .engines import binlog_position
from .model import Outcome, PrimaryCheck, ReplicaCheck, ReplicaVerdict, Sample, witnessed

_LOW32 = (1 << 32) - 1


def _mysql_bytes(primary: PrimaryCheck, check: ReplicaCheck) -> float | None:
    """Bytes of the primary's binlogs the replica has not executed, across files (SHOW BINARY LOGS sizes)."""
    if primary.position is None or check.exec_file is None or check.exec_offset is None:
        return None
    head_seq, head_off = int(primary.position) >> 32, int(primary.position) & _LOW32
    replica_pos = binlog_position(check.exec_file, check.exec_offset)
    if replica_pos is None:
        return None
    seq = int(replica_pos) >> 32
    if seq == head_seq:
        return float(head_off - check.exec_offset)
    sizes = {int(binlog_position(name, 0) or 0) >> 32: size for name, size in primary.binlogs}
    if seq > head_seq or any(s not in sizes for s in range(seq, head_seq)):
        return None  # a purged or unknown binlog: the distance is not known
    return float(sizes[seq] - check.exec_offset + sum(sizes[s] for s in range(seq + 1, head_seq)) + head_off)


def _bytes_behind(engine: str, instance: str, check: ReplicaCheck, primary: PrimaryCheck | None, furthest: float | None) -> float | None:
    if check.position is None:
        return None
    if primary is not None and primary.writable:
        if engine == "postgres":
            if instance in primary.replica_bytes:
                return primary.replica_bytes[instance]
            return None if primary.position is None else max(0.0, primary.position - check.position)
        return _mysql_bytes(primary, check)
    if furthest is None:
        return None
    if engine != "postgres" and int(furthest) >> 32 != int(check.position) >> 32:
        return None  # another binlog file: not comparable without the primary's sizes
    return max(0.0, furthest - check.position)


def _seconds_behind(engine: str, check: ReplicaCheck, lag_bytes: float | None, primary_ok: bool) -> float | None:
    if engine == "postgres":
        if check.caught_up_locally and (not primary_ok or lag_bytes == 0):
            return 0.0
        return None if check.since_last_replay is None else max(0.0, check.since_last_replay)
    if check.seconds_behind is not None:
        return check.seconds_behind
    return 0.0 if check.caught_up_locally and check.applying else None


def _broken(engine: str, check: ReplicaCheck, primary_ok: bool) -> str | None:
    if not check.replicating:
        return check.broken_reason or "not a replica"
    if engine == "postgres":
        return None
    if not check.applying:
        return f"replication apply stopped ({check.note})"
    if primary_ok and not check.receiving:
        return f"not receiving from a primary that answers ({check.note})"
    if primary_ok and check.seconds_behind is None:
        return f"Seconds_Behind is NULL while the primary answers ({check.note})"
    return None


def _fmt(value: float | None, unit: str) -> str:
    return "?" if value is None else f"{value:g}{unit}"


def _witnesses(replicas: list[Outcome], silence_seconds: float) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(replicas that lost the primary, replicas still receiving from it), among those that answered as replicas.
    Lost: the receiver is not streaming (PostgreSQL) or the I/O thread not running (MySQL/MariaDB), or
    (PostgreSQL) nothing heard from the source for silence_seconds (a black-holed primary: the receiver
    notices only at wal_receiver_timeout)."""
    lost: list[str] = []
    streaming: list[str] = []
    for o in replicas:
        check = o.replica
        if not o.answered or check is None or not check.replicating:
            continue
        silent = check.since_last_message is not None and check.since_last_message > silence_seconds
        (lost if not check.receiving or silent else streaming).append(o.instance)
    return tuple(lost), tuple(streaming)


def judge(cluster: str, at: datetime, engine: str, primary: Outcome, replicas: list[Outcome], silence_seconds: float = 30) -> Sample:
    errors = tuple(f"{o.instance}: {o.error}" for o in [primary, *replicas] if o.error_kind in ("auth", "config"))
    primary_ok = primary.answered and primary.primary is not None and primary.primary.writable
    healthy: bool | None
    if primary.answered and primary.primary is not None:
        healthy = primary.primary.writable
        reason = "answers and is writable" if healthy else "answers but is read-only (in recovery / read_only=1)"
    elif primary.error_kind in ("auth", "config"):
        healthy, reason = None, f"not judged: the probe's own credentials or settings failed ({primary.error})"
    elif replicas and not any(r.answered for r in replicas):
        healthy, reason = None, f"not judged: neither the primary nor any replica answered (the probe may be cut off): {primary.error}"
    else:
        healthy, reason = False, f"does not answer: {primary.error}"

    checks = {o.instance: o.replica for o in replicas if o.answered and o.replica is not None and o.replica.replicating}
    positions = [c.position for c in checks.values() if c.position is not None]
    furthest = max(positions) if positions else None
    verdicts = []
    for outcome in replicas:
        check = outcome.replica
        if not outcome.answered or check is None:
            verdicts.append(ReplicaVerdict(outcome.instance, answered=False, reason=f"no answer: {outcome.error}"))
            continue
        broken = _broken(engine, check, primary_ok)
        if broken is not None:
            verdicts.append(ReplicaVerdict(outcome.instance, answered=True, broken=True, reason=f"replication broken: {broken}"))
            continue
        lag_bytes = _bytes_behind(engine, outcome.instance, check, primary.primary if primary_ok else None, furthest)
        lag_seconds = _seconds_behind(engine, check, lag_bytes, primary_ok)
        against = "the primary" if primary_ok else "the furthest replica (primary unreadable)"
        note = f"; {check.note}" if check.note and engine == "postgres" else ""
        verdicts.append(
            ReplicaVerdict(
                outcome.instance,
                answered=True,
                broken=False,
                lag_seconds=lag_seconds,
                lag_bytes=lag_bytes,
                reason=f"{_fmt(lag_seconds, 's')}, {_fmt(lag_bytes, ' bytes')} behind {against}{note}",
            )
        )
    lost, streaming = _witnesses(replicas, silence_seconds)
    if healthy is False and not primary.answered:
        if streaming:
            reason += f"; but {', '.join(streaming)} still receive(s) from it (a cut between the probe and the primary?)"
        elif witnessed(len(lost), len(replicas)):
            reason += f"; confirmed by {', '.join(lost)}: lost it too"
        elif lost:
            reason += f"; only {', '.join(lost)} of {len(replicas)} replica(s) answer and lost it: not a majority, not confirmed"
    return Sample(cluster, at, primary.instance, healthy, reason, tuple(verdicts), errors, (primary, *replicas), lost, streaming)
