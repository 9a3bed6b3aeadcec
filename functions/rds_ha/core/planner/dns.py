"""The writer and reader records: what Route 53 should hold, and the atomic batches that get it there."""

from __future__ import annotations

from ..actions import (
    Action,
    ChangeRecords,
    ReaderVerdict,
    RecordChange,
)
from ..models import AVAILABLE, Instance, LagReading, Record, Topology
from .candidates import fmt
from .redundancy import own_group_pending


def diff_records(existing: tuple[Record, ...], desired: list[Record]) -> tuple[RecordChange, ...]:
    """Route 53 changes turning `existing` into `desired` (same name): a DELETE of each record set as it
    was read, then a CREATE of each new one. One batch is a transaction, and a DELETE must match the
    current record exactly: if another run moved a record since it was read, the batch fails whole
    (a compare-and-swap) instead of overwriting it."""

    def key(r: Record) -> tuple[str | None, str, int | None, int | None]:
        return (r.set_identifier, r.value, r.ttl, r.weight)

    want = {key(r) for r in desired}
    have = {key(r) for r in existing}
    deletes = [RecordChange("DELETE", r) for r in existing if key(r) not in want]
    creates = [RecordChange("CREATE", r) for r in desired if key(r) not in have]
    return tuple(deletes + creates)


def writer_changes(topo: Topology, primary: Instance) -> tuple[RecordChange, ...]:
    dns = topo.cluster.dns
    if not primary.endpoint:
        return ()
    return diff_records(topo.writer, [Record(dns.writer, primary.endpoint, dns.ttl)])


def _by(reading: LagReading) -> str:
    return "" if reading.source == "ReplicaLag" else f" ({reading.source})"


def reader_verdicts(topo: Topology, primary: Instance, exclude: frozenset[str]) -> list[ReaderVerdict]:
    """For each replica of `primary`: does it serve reads, and why (or why not).

    Lag has hysteresis: a replica in the reader set leaves it above `reader_max_lag_seconds`; one
    out of it returns only at or below `reader_rejoin_lag_seconds`. Route 53 is the memory of who
    is in, so a crash or a cold start changes nothing."""
    dns = topo.cluster.dns
    members = {r.set_identifier for r in topo.reader}
    high, low = dns.reader_max_lag_seconds, dns.reader_rejoin_lag
    out = []
    for replica in topo.replicas_of(primary.id):
        reading = topo.recent_lag.get(replica.id) if topo.recent_lag is not None else None
        stopped_at = topo.state.replication_stopped.get(replica.id)
        serving, reason = False, ""
        if replica.id in exclude:
            reason = "fenced" if replica.fenced or replica.id in topo.state.fenced else "leaving with the old primary"
        elif replica.fenced:
            reason = "fenced"
        elif replica.status != AVAILABLE:
            reason = f"status {replica.status}"
        elif (pending := own_group_pending(topo, replica)) is not None:
            reason = pending
        elif not replica.endpoint:
            reason = "no endpoint yet"
        elif replica.region != primary.region:
            reason = f"in {replica.region}; the reader name serves {primary.region}"
        elif stopped_at is not None and (reading is None or reading.at <= stopped_at or reading.seconds < 0):
            reason = f"replication stopped (RDS event at {stopped_at.isoformat(timespec='seconds')})"
        elif topo.recent_lag is None:
            serving, reason = True, "available (lag not read for this decision)"
        elif reading is None:
            serving = replica.id in members
            reason = "no recent ReplicaLag data; kept in" if serving else "no ReplicaLag data yet"
        elif reading.seconds < 0:
            reason = "replication broken (SQL probe)" if reading.source == "SQL probe" else "replication not active (ReplicaLag -1)"
        elif replica.id in members:
            serving = reading.seconds <= high
            reason = f"lag {fmt(reading.seconds)}{_by(reading)} {'<=' if serving else '>'} reader_max_lag {fmt(high)}"
        else:
            serving = reading.seconds <= low
            lag = f"lag {fmt(reading.seconds)}{_by(reading)}"
            reason = f"caught up: {lag} <= rejoin {fmt(low)}" if serving else f"{lag}; rejoins at <= {fmt(low)}"
        out.append(ReaderVerdict(replica.id, serving, reason))
    return out


def reader_changes(topo: Topology, primary: Instance, exclude: frozenset[str]) -> tuple[RecordChange, ...]:
    """Weighted CNAMEs (equal weights), one per serving replica of `primary`; the primary itself when none
    serves (HAProxy's `backup` server)."""
    dns = topo.cluster.dns
    if dns.reader is None:
        return ()
    serving = {v.instance for v in reader_verdicts(topo, primary, exclude) if v.serving}
    targets = [topo.instances[i] for i in sorted(serving)] or ([primary] if primary.endpoint else [])
    desired = [Record(dns.reader, t.endpoint or "", dns.ttl, set_identifier=t.id, weight=1) for t in targets]
    return diff_records(topo.reader, desired)


def dns_actions(topo: Topology, primary: Instance, exclude: frozenset[str], writer: bool, why: str) -> list[Action]:
    actions: list[Action] = []
    zone = topo.cluster.dns.zone_id
    if writer:
        changes = writer_changes(topo, primary)
        if changes:
            actions.append(ChangeRecords(reason=f"writer must point at the primary {primary.id}", zone_id=zone, changes=changes, role="writer"))
    changes = reader_changes(topo, primary, exclude)
    if changes:
        actions.append(ChangeRecords(reason=why, zone_id=zone, changes=changes, role="reader"))
    return actions
