"""The failover in progress: its next steps, derived from what AWS shows now (safe after a crash at any
point: a step already done is not planned again), and `outline`, the same steps as the dry run states them."""

from __future__ import annotations

from ... import TAG_FENCED
from ..actions import (
    AbortWorkflow,
    Action,
    ChangeRecords,
    CompleteWorkflow,
    DeleteInstance,
    Fence,
    FenceWrites,
    MoveProxy,
    Overdue,
    Plan,
    Promote,
    RecordPrimary,
    RetargetAlarms,
    StopInstance,
    Unfence,
    VerifyWriter,
    Wait,
)
from ..models import AVAILABLE, NEVER_WRITABLE, TERMINAL_STATUSES, WRITABLE, Instance, Topology, Workflow
from .dns import dns_actions
from .fence import fence_parameter, lift_if_held, plan_fence, refreeze, unplanned_freeze
from .proxy import proxy_move, proxy_waiting
from .redundancy import live_replicas, no_replicas_of, own_groups, redundancy

__all__ = ["WRITABLE", "outline", "plan_workflow"]


# A promotion recorded as issued whose target RDS still shows as an available replica this long after is sent
# again: it was never sent (the run died between recording and sending it) or RDS did not take it. Well past the
# moment RDS answers the call with the instance `modifying`.
PROMOTE_AGAIN_SECONDS = 60


def plan_workflow(topo: Topology) -> Plan:
    """The next steps of the failover in progress, derived from what AWS shows now."""
    wf = topo.state.workflow
    assert wf is not None
    new = topo.instances.get(wf.new_primary)
    old = topo.instances.get(wf.old_primary)
    if new is None:
        return given_back(topo, wf, new, old, f"{wf.new_primary}, chosen for promotion, no longer exists")
    if topo.state.primary != new.id and _will_not_write(wf, new):
        failed = "its promotion failed: " if wf.promote_issued_at is not None else ""
        return given_back(topo, wf, new, old, f"{failed}{new.id} is {new.status}")
    late: list[Action] = []
    limit = topo.cluster.failover.deadline_seconds
    if wf.verified_at is None and (topo.now - wf.started_at).total_seconds() > limit:
        missing = "promotion" if new.is_replica else "writer record verification"
        why = f"{wf.kind} not verified within failover.deadline_seconds {limit}s (still waiting for the {missing}: {wf.step})"
        if wf.promote_issued_at is None and new.is_replica:  # nothing was sent: nothing can become writable
            return given_back(topo, wf, new, old, why)
        if topo.state.primary == new.id:  # recorded as the primary: the steady plan keeps the cluster from here
            return Plan("blocked", why, (AbortWorkflow(reason=why),))
        if wf.overdue_at is None:  # a promotion RDS may have accepted: the workflow goes on until it ends either way
            late.append(Overdue(reason=f"{why}; {new.id} may still become writable: the {wf.kind} goes on until it is, or fails for good"))
    fencing = plan_fence(topo, wf, new, old)
    if fencing is not None:
        return given_back(topo, wf, new, old, fencing.reason) if fencing.outcome == "blocked" else fencing
    fence: list[Action] = [*late, *refreeze(topo, wf), *unplanned_freeze(topo, wf, old)]
    if old is not None and not old.fenced:
        fence.append(Fence(reason=f"{old.id} was the primary; it must never take writes again", instance=old.id))
    if new.is_replica:
        return _promoting(topo, wf, new, old, fence)
    if new.status not in WRITABLE:
        if new.status in TERMINAL_STATUSES and topo.state.primary == new.id:  # the recorded new primary failed after its promotion
            return Plan("blocked", f"promoted {new.id} is {new.status}", (*fence, AbortWorkflow(reason=f"{new.id} is {new.status}")))
        actions = fence + dns_actions(topo, new, _out_of_dns(wf), writer=False, why="orphans and the old primary leave the reader set at once")
        actions += proxy_move(topo, new, register=False, why=_LEAVES_PROXY)
        actions.append(Wait(reason=f"{new.id} is promoted but {new.status}; the writer moves when it accepts writes"))
        return Plan("progress", "finishing promotion", tuple(actions))
    return _restoring(topo, wf, new, old, fence)


def _will_not_write(wf: Workflow, new: Instance) -> bool:
    """The target cannot become a writer: its promotion failed for good, or it is out of service and was never promoted."""
    return new.status in NEVER_WRITABLE or (new.status in TERMINAL_STATUSES and new.is_replica and wf.promote_issued_at is None)


def given_back(topo: Topology, wf: Workflow, new: Instance | None, old: Instance | None, why: str) -> Plan:
    """The workflow ends with no new primary (its target cannot become writable): the old primary gets back what
    the plan took from it, in the order that keeps one writer. Its write fence is lifted, its fence tag removed
    (its reader set and proxy target follow at the next steady look), and the cooldown a failover started is
    given back (the abort's step): a later failover can choose another candidate."""
    actions: list[Action] = list(lift_if_held(wf, new, why))
    if topo.state.primary == wf.old_primary and old is not None and (old.fenced or old.id in topo.state.fenced):
        actions.append(Unfence(reason=f"{why}; {old.id} is still the cluster's primary", instance=old.id))
    actions.append(AbortWorkflow(reason=why))
    return Plan("blocked", why, tuple(actions))


def _out_of_dns(wf: Workflow) -> frozenset[str]:
    return frozenset({wf.old_primary, *wf.orphans})


def _promoting(topo: Topology, wf: Workflow, new: Instance, old: Instance | None, fence: list[Action]) -> Plan:
    """The candidate is still a replica: promote it (once, or again if RDS never took it), fence the old primary,
    and let it alone serve reads."""
    actions: list[Action] = []
    # The promotion is the long pole: issue it first, then the fence and the reader set.
    issued = wf.promote_issued_at
    if new.status == AVAILABLE and (issued is None or (topo.now - issued).total_seconds() >= PROMOTE_AGAIN_SECONDS):
        retention = max(1, old.backup_retention if old is not None else 1)
        why = f"{new.id} is the chosen candidate"
        if issued is not None:
            why = f"{new.id} is still an available replica {PROMOTE_AGAIN_SECONDS}s after its promotion was recorded: RDS never took it; sent again"
        # A switchover's fence set again goes first: nothing is promoted while the old primary takes writes. (An
        # unplanned failover's freeze never holds its promotion up.)
        first = [a for a in fence if isinstance(a, FenceWrites) and not a.unplanned]
        actions += first
        actions.append(Promote(reason=why, instance=new.id, backup_retention=retention))
        fence = [a for a in fence if a not in first]
    else:
        actions.append(Wait(reason=f"promotion of {new.id} in progress (status {new.status})"))
    # Until it is promoted the candidate is the best copy of the data: it alone serves reads.
    actions += fence + dns_actions(topo, new, _out_of_dns(wf), writer=False, why="orphans and the old primary leave the reader set at once")
    if wf.promote_issued_at is not None:  # no way back: the old primary leaves the proxy at once
        actions += proxy_move(topo, new, register=False, why=_LEAVES_PROXY)
    return Plan("progress", "promoting", tuple(actions))


_LEAVES_PROXY = "the old primary is being replaced: the proxy must not send it another write"


def _restoring(topo: Topology, wf: Workflow, new: Instance, old: Instance | None, fence: list[Action]) -> Plan:
    """Promoted and writable: move the writer, record the primary, point the alarms, then rebuild redundancy."""
    cfg = topo.cluster
    actions = fence + dns_actions(topo, new, _out_of_dns(wf), writer=True, why="reader set follows the new primary's replicas")
    # At the same point as the writer record, and never holding it up (MoveProxy is not critical).
    actions += proxy_move(topo, new, register=True, why=f"{new.id} accepts writes: the proxy's clients follow the writer")
    if topo.state.primary != new.id:
        actions.append(RecordPrimary(reason=f"{new.id} is promoted and the writer points at it", instance=new.id))
    if wf.alarms_moved_at is None and cfg.alarms.failover:
        # Alarms that watch the old primary's instance would never see the new primary fail.
        why = f"{new.id} is the primary: a second failure must be seen"
        actions.append(RetargetAlarms(reason=why, alarms=tuple(cfg.alarms.failover), old=wf.old_primary, new=new.id))
    ready = [r for r in live_replicas(topo, new) if r.status == AVAILABLE]
    actions += own_groups(topo, new)
    waiting: list[str] = []
    for part in (_replicas(topo, wf, new, old, ready), _orphans(topo, wf, ready), _stop_old(topo, old)):
        actions += part[0]
        waiting += part[1]
    moving_writer = any(isinstance(a, ChangeRecords) and a.role == "writer" for a in actions)
    if wf.verified_at is None and not moving_writer:
        verified, state = _writer_verified(topo, new)
        if verified:
            actions.append(VerifyWriter(reason=state, instance=new.id))
        else:
            waiting.append(state)
    proxy = proxy_waiting(topo, new)
    if proxy is not None:
        waiting.append(proxy)
        blocked = _proxy_blocked(topo, wf, new, proxy, actions, waiting)
        if blocked is not None:
            return blocked
    if any(a.mutates for a in actions):
        return Plan("progress", "restoring redundancy", tuple(actions))
    if waiting:
        return Plan("waiting", "; ".join(waiting), (Wait(reason="; ".join(waiting)),))
    return Plan("complete", f"{new.id} is the primary with {len(ready)} replica(s)", (CompleteWorkflow(reason="every step verified"),))


def _proxy_blocked(topo: Topology, wf: Workflow, new: Instance, proxy: str, actions: list[Action], waiting: list[str]) -> Plan | None:
    """Past failover.deadline_seconds with only the proxy left (its move failing, or its target never
    AVAILABLE): the database failed over, its proxy did not follow. One last move, then the workflow ends
    blocked and notified; reconcile keeps moving the proxy (drift) from then on."""
    limit = topo.cluster.failover.deadline_seconds
    if waiting != [proxy] or (topo.now - wf.started_at).total_seconds() <= limit:
        return None
    if any(a.mutates and not isinstance(a, MoveProxy) for a in actions):
        return None
    why = f"{proxy} after failover.deadline_seconds {limit}s: its clients do not reach {new.id} (reconcile keeps trying)"
    return Plan("blocked", why, (*(a for a in actions if isinstance(a, MoveProxy)), AbortWorkflow(reason=why)))


Part = tuple[list[Action], list[str]]


def _replicas(topo: Topology, wf: Workflow, new: Instance, old: Instance | None, ready: list[Instance]) -> Part:
    """New replicas of the new primary up to replicas.min (once it is available), or why they wait."""
    waiting: list[str] = []
    creates: list[Action] = list(redundancy(topo, new, old, wf.id, f"rds-ha failover {wf.id}"))
    refused = no_replicas_of(new) if creates and new.status == AVAILABLE else None
    if refused:
        waiting.append(f"redundancy cannot be rebuilt: {refused}")
        creates = []
    elif creates and new.status != AVAILABLE:
        waiting.append(f"{new.id} is {new.status}; replicas are created once it is available")
        return [], waiting
    if len(ready) < topo.cluster.replicas.min and not creates and not refused:
        waiting.append(f"{len(ready)}/{topo.cluster.replicas.min} new replicas available")
    return creates, waiting


def _orphans(topo: Topology, wf: Workflow, ready: list[Instance]) -> Part:
    """The old primary's other replicas, deleted once their replacements are available and no record names them."""
    cfg = topo.cluster
    orphans = [topo.instances[o] for o in wf.orphans if o in topo.instances and topo.instances[o].status != "deleting"]
    if not cfg.failover.delete_orphans or not orphans:
        return [], []
    if len(ready) < cfg.replicas.min:
        return [], ["orphans are deleted once their replacements are available"]
    named = {r.set_identifier for r in (*topo.reader, *topo.writer)}
    # Never delete what a record still names: this plan's reader change goes first, the delete next run.
    deletes: list[Action] = [
        DeleteInstance(reason="orphaned replica of the old primary; its replacements are available", instance=o.id) for o in orphans if o.id not in named
    ]
    return deletes, (["orphans still named by a record are deleted once the record is gone"] if any(o.id in named for o in orphans) else [])


def _stop_old(topo: Topology, old: Instance | None) -> Part:
    if not topo.cluster.failover.stop_old_primary or old is None or old.status != AVAILABLE:
        return [], []
    if any(r.status != "deleting" for r in topo.replicas_of(old.id)):
        return [], [f"{old.id} is stopped once its replicas are gone"]
    return [StopInstance(reason="failover.stop_old_primary is set and nothing replicates from it", instance=old.id)], []


# Route 53 propagates a change to all its servers "generally within 60 seconds" (GetChange: INSYNC).
PROPAGATION_SECONDS = 60


def _writer_verified(topo: Topology, new: Instance) -> tuple[bool, str]:
    """Is the writer move done as far as clients can tell? Its change INSYNC, and Route 53's
    authoritative answer (public zones) or its record (private zones) naming only the new primary.
    A check that cannot run (Route 53 throttles, or refuses TestDNSAnswer) holds nothing up: the
    record as Route 53 holds it decides, once the change is INSYNC (or, with GetChange failing too,
    older than Route 53's propagation time)."""
    check, expected = topo.writer_check, new.endpoint
    if check is None:
        return False, "writer record not checked yet"
    if check.change_status not in (None, "INSYNC"):
        return False, f"writer change {check.change_status} (Route 53 propagating)"
    wf = topo.state.workflow
    if not check.status_known:
        moved = wf.writer_moved_at if wf is not None else None
        if moved is None or (topo.now - moved).total_seconds() < PROPAGATION_SECONDS:
            return False, f"{check.unchecked}; waiting {PROPAGATION_SECONDS}s after the writer change for Route 53 to propagate it"
    if check.answer is not None:
        if check.answer != (expected,):
            return False, f"Route 53 answers {', '.join(check.answer) or 'nothing'} for {topo.cluster.dns.writer}, not {expected}"
        return True, f"writer change INSYNC; Route 53 answers {expected}"
    if [r.value for r in topo.writer] != [expected]:
        return False, f"the writer record is {', '.join(r.value for r in topo.writer) or 'missing'}, not {expected}"
    if check.unchecked is not None:
        insync = "INSYNC" if check.status_known else f"older than {PROPAGATION_SECONDS}s"
        return True, f"{check.unchecked}: verified from the record as Route 53 holds it (writer change {insync}; the record names {expected})"
    return True, f"writer change INSYNC; private zone: the record names {expected} (TestDNSAnswer serves public zones only)"


def outline(topo: Topology, wf: Workflow) -> list[str]:
    """The steps a failover will take, in the order `plan_workflow` takes them (what `failover --dry-run`
    prints; tests/integration/test_dry_run.py holds the two together)."""
    cfg = topo.cluster
    new = topo.instances.get(wf.new_primary)
    steps: list[str] = []
    if wf.kind == "switchover" and cfg.switchover.fence is not None:
        old = topo.instances.get(wf.old_primary)
        parameter = fence_parameter(old.engine if old else "postgres")
        steps += [
            f"freeze writes on {wf.old_primary}: {parameter}=1 in its DB parameter group {old.parameter_group if old else '?'} (recorded first)",
            f"once {wf.old_primary} refuses writes: end its open transactions, read its final write position",
            f"wait until {wf.new_primary} has replayed that position (else, after switchover.catch_up_seconds="
            f"{cfg.switchover.catch_up_seconds}s, lift the fence and refuse); confirm the fence holds right before the promotion",
        ]
    steps += [
        f"promote {wf.new_primary} (issued first: it is the long pole; recorded before it is sent, and never undone once sent)",
        f"fence {wf.old_primary}: tag it {TAG_FENCED}, take it out of every record (never delete it)",
    ]
    if wf.kind == "failover" and cfg.switchover.fence is not None:
        old = topo.instances.get(wf.old_primary)
        parameter = fence_parameter(old.engine if old else "postgres")
        group = old.parameter_group if old else "?"
        steps.append(f"freeze writes on {wf.old_primary}: {parameter}=1 in its DB parameter group {group} (after the promotion, never delaying it)")
    if wf.orphans:
        steps.append(f"take the orphans {', '.join(wf.orphans)} out of the reader set")
    target = new.endpoint if new else wf.new_primary
    steps.append(
        f"once {wf.new_primary} is standalone and accepts writes: move {cfg.dns.writer} CNAME to {target} (TTL {cfg.dns.ttl}s), "
        "one batch that deletes the record as read and creates the new one"
    )
    if cfg.proxy is not None:
        steps.append(
            f"proxy {cfg.proxy.name} ({cfg.proxy.target_group}): deregister {wf.old_primary} once the promotion is issued, register "
            f"{wf.new_primary} once it accepts writes (a target group holds one instance); complete once the proxy reports it AVAILABLE"
        )
    steps.append(f"create replicas of {wf.new_primary} up to replicas.min={cfg.replicas.min}, spread over AZs")
    if wf.orphans and cfg.failover.delete_orphans:
        steps.append(f"delete the orphans {', '.join(wf.orphans)} once their replacements are available")
    if cfg.failover.stop_old_primary:
        steps.append(f"stop {wf.old_primary} once nothing replicates from it")
    return steps
