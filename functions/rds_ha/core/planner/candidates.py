"""Failover candidates: every replica of the primary gets a verdict sentence (eligible, or why not), and
the eligible ones are ranked: the primary's region, then the most data, then the least lag, then `prefer`."""

from __future__ import annotations

import math
from dataclasses import replace

from ... import TAG_CLUSTER
from ..actions import (
    CandidateVerdict,
)
from ..models import AVAILABLE, Instance, Topology
from .request import FailoverRequest


def fmt(seconds: float) -> str:
    return f"{seconds:g}s"


# The SQL probe and CloudWatch disagree when their lags differ by more than this (and cross the limit).
DISAGREE_SECONDS = 5.0


def _lag_evidence(topo: Topology, replica: Instance) -> tuple[float | None, str, str | None]:
    """The lag a candidate is judged by, where it came from when not CloudWatch, and a disagreement worth logging.
    The probe's engine-side reading wins when recent: CloudWatch's ReplicaLag is -1 or NULL when
    replication is broken, and reads minutes on an idle PostgreSQL source."""
    cw = topo.lag.get(replica.id)
    engine = topo.engine_reading(replica.id)
    if engine is None or engine.lag_seconds is None:
        return cw, "", None
    probe = engine.lag_seconds
    disagree = None
    if cw is not None and (cw < 0 or abs(cw - probe) > DISAGREE_SECONDS):
        cw_text = "-1 (replication not active)" if cw < 0 else fmt(cw)
        disagree = f"CloudWatch ReplicaLag {cw_text} disagrees with the SQL probe's {fmt(probe)}"
    behind = f", {engine.lag_bytes:g} bytes behind" if engine.lag_bytes is not None else ""
    return probe, f" (SQL probe{behind})", disagree


def max_lag(topo: Topology, request: FailoverRequest) -> tuple[float, str]:
    """The lag limit a candidate is judged by, and its name as the verdict says it."""
    if request.max_lag_seconds is not None:
        return request.max_lag_seconds, "--max-lag"
    return topo.cluster.failover.max_lag_seconds, "max"


def evaluate_candidates(topo: Topology, request: FailoverRequest) -> list[CandidateVerdict]:
    """A verdict for every replica of the primary: eligible, or the reason it is not."""
    cfg = topo.cluster.failover
    home = topo.primary.region if topo.primary is not None else topo.cluster.region
    limit, limit_name = max_lag(topo, request)
    verdicts = []
    for replica in topo.replicas_of(topo.state.primary):
        lag, source, disagree = _lag_evidence(topo, replica)
        engine = topo.engine_reading(replica.id)
        reason = None
        if request.target and replica.id != request.target:
            reason = f"not the requested target {request.target}"
        elif replica.fenced:
            reason = "fenced"
        elif replica.cluster_tag != topo.cluster.name:
            # rds-ha's IAM policy lets it promote only instances tagged as the cluster's: the call would be refused.
            reason = f"not tagged {TAG_CLUSTER}={topo.cluster.name} (rds-ha may act only on tagged instances; rds-ha apply --tag-members)"
        elif replica.never_promote:
            reason = "tagged rds-ha:never-promote"
        elif replica.status != AVAILABLE:
            reason = f"status {replica.status}"
        elif replica.region != home and not cfg.allow_cross_region:
            reason = f"in {replica.region}, another region (failover.allow_cross_region is off)"
        elif engine is not None and engine.broken:
            # Never a candidate, forced or not: promoting it would lose everything since it broke.
            reason = f"replication broken (SQL probe at {engine.at.isoformat(timespec='seconds')})"
        elif lag is None and not request.lag_unchecked and replica.region in topo.metrics_unread:
            reason = f"no ReplicaLag data: {replica.region}'s CloudWatch could not be read ({topo.metrics_unread[replica.region]})"
        elif lag is None and not request.lag_unchecked:
            reason = "no recent ReplicaLag data" if request.planned else f"no ReplicaLag data in the {cfg.lag_window_seconds}s before the failure"
        elif lag is not None and lag < 0 and not request.lag_unchecked:
            reason = "replication not active (ReplicaLag -1)"
        elif lag is not None and lag > limit:
            reason = f"lag {fmt(lag)}{source} > {limit_name} {fmt(limit)}"
        eligible = reason is None
        if reason is None:
            reason = f"lag {fmt(lag)}{source} <= {limit_name} {fmt(limit)}" if lag is not None and lag >= 0 else "lag not judged (--max-lag any)"
        if disagree is not None:
            reason += f"; {disagree}"
        verdicts.append(
            CandidateVerdict(
                instance=replica.id,
                eligible=eligible,
                reason=reason,
                lag=lag,
                az=replica.az,
                lag_bytes=engine.lag_bytes if engine is not None else None,
                disagreement=disagree,
            )
        )
    return verdicts


def _preference(topo: Topology, verdict: CandidateVerdict) -> tuple[bool, float, float, int, str]:
    """Sort key of eligible candidates: the primary's region first (a remote writer costs every
    client a round trip), then the most data (fewest bytes behind, by the SQL probe; unknown last),
    then least lag, then the configured preference."""
    prefer = topo.cluster.failover.prefer
    inst = topo.instances[verdict.instance]
    remote = topo.primary is not None and inst.region != topo.primary.region
    rank = len(prefer)
    for index, place in enumerate(prefer):
        if place in (inst.az, inst.region):
            rank = index
            break
    lag = verdict.lag if verdict.lag is not None and verdict.lag >= 0 else math.inf
    behind = verdict.lag_bytes if verdict.lag_bytes is not None else math.inf
    return (remote, behind, lag, rank, verdict.instance)


def ranked(topo: Topology, request: FailoverRequest) -> tuple[list[CandidateVerdict], list[CandidateVerdict]]:
    """Every replica's verdict, and the eligible ones best first."""
    verdicts = evaluate_candidates(topo, request)
    return verdicts, sorted((v for v in verdicts if v.eligible), key=lambda v: _preference(topo, v))


def judged_now(topo: Topology) -> Topology:
    """The topology with each replica's latest ReplicaLag as its lag (a planned decision, not a failure window)."""
    return replace(topo, lag={iid: reading.seconds for iid, reading in (topo.recent_lag or {}).items()})


def none_qualify(verdicts: list[CandidateVerdict], primary: str) -> str:
    return "; ".join(f"{v.instance}: {v.reason}" for v in verdicts) or f"{primary} has no replicas"
