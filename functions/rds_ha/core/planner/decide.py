"""Deciding on a failover or a switchover request: each refusal is a guard (`guards`), then the best candidate."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import replace

from ..actions import (
    CandidateVerdict,
    Outcome,
    Plan,
    StartWorkflow,
)
from ..models import AVAILABLE, Topology, Workflow
from . import guards
from .candidates import fmt, judged_now, none_qualify, ranked
from .fence import fence_limitation
from .request import FailoverRequest

Limitation = tuple[Outcome, str]
# The refusals of a failover request after the workflow and duplicate checks, in order, with the outcome each gives.
FAILOVER_GUARDS: tuple[tuple[Outcome, Callable[[Topology, FailoverRequest], str | None]], ...] = (
    ("ignored", guards.alarm_cleared),
    ("ignored", guards.not_the_primary),
    ("refused", guards.cooldown_limitation),
    ("refused", lambda topo, _: guards.primary_is_replica(topo)),
    ("deferred", guards.multi_az_grace),
    ("deferred", guards.uncorroborated),
    ("refused", guards.healthy_primary),
    ("refused", lambda topo, request: guards.not_a_replica(topo, request.target)),
)


def failover_limitation(topo: Topology, request: FailoverRequest) -> Limitation | None:
    """Why this request starts no failover now, before any candidate is looked at (or None)."""
    busy = guards.in_progress(topo.state)
    if busy is not None:
        return ("ignored" if request.automatic else "refused"), busy
    if request.alarm_name is not None and not request.standing:
        handled = topo.state.handled(request.alarm_name, request.failure_time)
        if handled is not None:
            return "duplicate", handled.describe(request.alarm_name)
    for outcome, guard in FAILOVER_GUARDS:
        reason = guard(topo, request)
        if reason is not None:
            return outcome, reason
    return None


def decide_failover(topo: Topology, request: FailoverRequest) -> Plan:
    """Decide whether to start a failover and which replica to promote; while the cluster is
    paused, an automatic decision to start becomes a record of what would have been done."""
    limitation = failover_limitation(topo, request)
    if limitation is not None and limitation[0] in {"refused", "deferred"} and topo.primary is not None and topo.state.workflow is None:
        # Refused by a guard: each replica's verdict still shows what a failover past it would find.
        return Plan(*limitation, candidates=tuple(ranked(topo, request)[0]))
    if limitation is not None:
        return Plan(*limitation)
    verdicts, eligible = ranked(topo, request)
    if not eligible:
        return Plan("blocked", f"no replica qualifies for promotion ({none_qualify(verdicts, topo.state.primary)})", candidates=tuple(verdicts))
    plan = _promote(topo, request, verdicts, eligible[0])
    paused = guards.pause_limitation(topo.state, request.automatic)
    if paused is None:
        return plan
    return Plan("paused", f"{paused}; would {plan.reason}", candidates=plan.candidates, chosen=plan.chosen)


def _promote(topo: Topology, request: FailoverRequest, verdicts: list[CandidateVerdict], chosen: CandidateVerdict) -> Plan:
    others = [v for v in verdicts if v.instance != chosen.instance]
    wf = Workflow(
        id=request.workflow_id,
        trigger=request.trigger,
        overrides=request.overrides,
        manual=not request.automatic,
        started_at=topo.now,
        failure_time=request.failure_time,
        old_primary=topo.state.primary,
        new_primary=chosen.instance,
        orphans=tagged_members(topo, (v.instance for v in others)),
        step="promote",
    )
    lag_text = f"lag {fmt(chosen.lag)}" if chosen.lag is not None else "lag not judged (--max-lag any)"
    why = (
        "requested target"
        if request.target
        else "most data among eligible replicas (SQL probe)"
        if chosen.lag_bytes is not None
        else "least lag among eligible replicas"
    )
    # Say why each other replica lost: ineligible ones keep their reason, eligible ones lost the tie-break.
    explained = tuple(
        v if v.instance == chosen.instance or not v.eligible else replace(v, reason=f"{v.reason}, but {chosen.instance} is preferred") for v in verdicts
    )
    lifted = f"; overrides: {', '.join(request.overrides)}" if request.overrides else ""
    return Plan(
        "start",
        f"promote {chosen.instance} ({lag_text}; {why}){lifted}",
        actions=(StartWorkflow(reason=request.trigger, workflow=wf),),
        candidates=explained,
        chosen=chosen.instance,
    )


def tagged_members(topo: Topology, ids: Iterable[str]) -> tuple[str, ...]:
    """The cluster's tagged members among `ids`: an untagged replica of the old primary is not rds-ha's to
    take out of DNS or delete (IAM would refuse the delete: ActOnClusterMembers requires the tag)."""
    return tuple(i for i in ids if i in topo.instances and topo.instances[i].cluster_tag == topo.cluster.name)


def switchover_limitation(topo: Topology, request: FailoverRequest) -> str | None:
    """Why no switchover starts now, before any candidate is looked at (or None)."""
    primary = topo.primary
    expected = request.expected_primary
    if expected is not None and topo.state.primary != expected:
        return (
            f"the primary changed from {expected} to {topo.state.primary} while this switchover waited (a failover ran): "
            f"nothing more is switched; ask again if {topo.state.primary} should be replaced"
        )
    if primary is None:
        return guards.in_progress(topo.state) or f"primary {topo.state.primary} not found"
    down = f"primary {primary.id} is {primary.status}: that is a failover (rds-ha failover), not a switchover" if primary.status != AVAILABLE else None
    return (
        guards.in_progress(topo.state)
        or guards.primary_is_replica(topo)
        or down
        or guards.not_a_replica(topo, request.target)
        or fence_limitation(topo, primary)
    )


def _by_switchover_limit(reason: str, lag: float, limit: float) -> str:
    """A candidate's verdict ("lag 3s (SQL probe) <= max 30s; ...") judged by switchover.max_lag_seconds instead."""
    head, _, tail = reason.partition(" <= ")
    rest = tail.partition("; ")[2]
    judged = f"{head} {'>' if lag > limit else '<='} switchover.max_lag_seconds {fmt(limit)}" + ("; it catches up first" if lag > limit else "")
    return judged + (f"; {rest}" if rest else "")


def decide_switchover(topo: Topology, request: FailoverRequest) -> Plan:
    """A planned change of primary: the primary must be healthy, the target eligible as for a failover
    and caught up to switchover.max_lag_seconds (judged by its latest ReplicaLag)."""
    state, limit = topo.state, topo.cluster.switchover.max_lag_seconds
    refusal = switchover_limitation(topo, request)
    if refusal is not None:
        return Plan("refused", refusal)
    verdicts, eligible = ranked(judged_now(topo), request)
    if not eligible:
        return Plan("refused", f"no replica qualifies as the new primary ({none_qualify(verdicts, state.primary)})", candidates=tuple(verdicts))
    chosen = eligible[0]
    lag = chosen.lag if chosen.lag is not None else math.inf
    # The chosen row is judged by the switchover's own limit, as the headline is (not the failover's).
    verdicts = [replace(v, reason=_by_switchover_limit(v.reason, lag, limit)) if v is chosen else v for v in verdicts]
    if lag > limit:
        why = f"{chosen.instance} lag {fmt(lag)} > switchover.max_lag_seconds {fmt(limit)}: waiting for it to catch up"
        return Plan("waiting", why, candidates=tuple(verdicts), chosen=chosen.instance)
    wf = Workflow(
        id=request.workflow_id,
        kind="switchover",
        trigger=request.trigger,
        manual=True,
        started_at=topo.now,
        failure_time=topo.now,
        old_primary=state.primary,
        new_primary=chosen.instance,
        orphans=tagged_members(topo, (v.instance for v in verdicts if v.instance != chosen.instance)),
        step="promote",
    )
    why = "requested target" if request.target else "least lag among eligible replicas"
    return Plan(
        "start",
        f"switch over to {chosen.instance} (lag {fmt(lag)} <= {fmt(limit)}; {why})",
        actions=(StartWorkflow(reason=request.trigger, workflow=wf),),
        candidates=tuple(verdicts),
        chosen=chosen.instance,
    )
