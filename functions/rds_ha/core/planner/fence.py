"""A planned switchover's write fence (switchover.fence): freeze writes on the old primary through its own DB
parameter group, end its open transactions and read its final write position, promote the target only once
it has replayed that position; lift the fence (and refuse) if that does not happen within
switchover.catch_up_seconds of the fence.

The order makes every crash safe: the fence is recorded in the workflow before the parameter group is
changed; the target is promoted only after the final position is recorded and replayed, and only while the
fence still holds as RDS and SQL show it right before the call; the promotion is recorded before it is sent;
and the fence is lifted only while the target cannot become writable (its promotion never issued, or failed
for good), so the old primary and the new one are never both writable. Someone putting the parameter back
(a Terraform re-apply) ends the switchover before its promotion, and is undone after it.
"""

from __future__ import annotations

from ..actions import Action, FenceWrites, LiftFence, Plan, SealWrites, UnblockFence, Wait
from ..models import AVAILABLE, NEVER_WRITABLE, TERMINAL_STATUSES, FenceView, Instance, Topology, Workflow, WriteFence

# How long `read_only` may take to apply on MySQL/MariaDB before the transactions that hold it back are ended.
UNBLOCK_AFTER_SECONDS = 1.0


def fence_parameter(engine: str) -> str:
    """The dynamic parameter that makes new transactions read-only: PostgreSQL's default_transaction_read_only,
    MySQL's and MariaDB's read_only (both in RDS parameter groups, applied without a reboot)."""
    return "default_transaction_read_only" if engine.startswith("postgres") else "read_only"


def fence_limitation(topo: Topology, old: Instance) -> str | None:
    """Why the old primary cannot be fenced (or None): the fence changes its DB parameter group, so the group
    must be one RDS lets a customer change (not a default one) and used by no other instance of the cluster."""
    if topo.cluster.switchover.fence is None:
        return None
    group = old.parameter_group
    if not group or group.startswith("default."):
        return (
            f"switchover.fence needs {old.id}'s own DB parameter group, and it uses {group or 'none known'} "
            "(RDS does not let default groups be changed): create one, attach it to the instance and reboot it"
        )
    live = (i for i in topo.instances.values() if i.id != old.id and i.status not in TERMINAL_STATUSES)
    sharing = sorted({i.id for i in live if i.parameter_group == group} | set(topo.group_sharers.get(group, ())))
    if sharing:
        return (
            f"switchover.fence: {old.id}'s DB parameter group {group} is also {', '.join(sharing)}'s: "
            "freezing it would freeze them (give each instance its own group)"
        )
    return None


def unplanned_freeze(topo: Topology, wf: Workflow, old: Instance | None) -> list[Action]:
    """An unplanned failover under switchover.fence also freezes the old primary's writes through its own parameter
    group, once the promotion is issued (never before: it must not hold the promotion up). A primary that is in fact
    alive (a metric gap, a cut between it and CloudWatch) then stops acknowledging writes the promoted replica will
    never have; a dead one's freeze never applies, and is there if it comes back. Recorded first, as a switchover's
    fence, so a failover that ends with no new primary lifts it (given_back)."""
    if wf.kind != "failover" or wf.fence is not None or wf.promote_issued_at is None or old is None or old.status in TERMINAL_STATUSES:
        return []
    if topo.cluster.switchover.fence is None or fence_limitation(topo, old) is not None:
        return []
    why = f"{old.id} is being replaced: a write it still takes would be lost (an unplanned failover freezes it too)"
    return [FenceWrites(reason=why, instance=old.id, group=old.parameter_group or "", parameter=fence_parameter(old.engine), unplanned=True)]


def lift_if_held(wf: Workflow, new: Instance | None, reason: str) -> tuple[Action, ...]:
    """The fence's lifting when a switchover ends without a new primary: only while its target cannot become
    writable (a replica whose promotion was never issued, an instance gone, or one whose promotion failed for
    good). A promotion RDS may have accepted is a future writer: its fence is never lifted."""
    fence = wf.fence
    if fence is None or not fence.holding:
        return ()
    may_write = wf.writer_moved_at is not None or wf.promote_issued_at is not None
    if new is not None and new.status not in NEVER_WRITABLE and (may_write or not new.is_replica):
        return ()
    return (LiftFence(reason=reason, instance=fence.instance),)


def undone(fence: WriteFence, view: FenceView) -> str | None:
    """Why the fence no longer holds on the old primary as RDS and SQL show it now (None: it holds, or is not known
    not to): someone put the parameter back (a Terraform re-apply), or a new session is not read-only."""
    if view.parameter is not None and view.parameter != "1":
        return f"{fence.parameter} is {view.parameter} again in {fence.group}"
    if view.frozen is False and fence.position is not None:
        return f"a new session on {fence.instance} is not read-only any more"
    return None


def refreeze(topo: Topology, wf: Workflow) -> list[Action]:
    """After the promotion was issued, until the writer moves: the fence must hold, whoever put the parameter back."""
    fence, view = wf.fence, topo.fence
    if fence is None or not fence.holding or wf.writer_moved_at is not None or view is None or view.parameter in (None, "1"):
        return []
    why = f"{fence.parameter} is {view.parameter} again in {fence.group}: {fence.instance} must take no write while {wf.new_primary} is promoted"
    unplanned = wf.kind == "failover"
    return [FenceWrites(reason=why, instance=fence.instance, group=fence.group, parameter=fence.parameter, again=True, unplanned=unplanned)]


def plan_fence(topo: Topology, wf: Workflow, new: Instance, old: Instance | None) -> Plan | None:
    """The fence's next step before the promotion, or None when there is none (no fence configured, the
    promotion issued, or the target has replayed the final position: promote). A plan that ends the switchover
    here says so with `ends`: its caller adds what gives the old primary back."""
    cfg = topo.cluster
    if wf.kind != "switchover" or cfg.switchover.fence is None or wf.promote_issued_at is not None or not new.is_replica or old is None:
        return None
    fence = wf.fence
    view = topo.fence or FenceView(error="not read")
    if fence is None:
        if view.error is not None:  # this run could never seal the fence: it must not freeze writes
            return _ends(f"the write fence's SQL cannot reach {old.id} and {new.id} from here ({view.error}); nothing was changed")
        if view.replayed is None:
            return _ends(f"{new.id} does not replicate from {old.id} as SQL sees it (no replay position); nothing was changed")
        if view.overrides:
            return _ends(
                f"switchover.fence: {'; '.join(view.overrides)} outranks {old.id}'s parameter group for new sessions, so the "
                "fence would not hold for them (ALTER ROLE/DATABASE ... RESET default_transaction_read_only); nothing was changed"
            )
        parameter = fence_parameter(old.engine)
        why = f"no write may reach {old.id} once {new.id} has replayed its last one"
        return Plan("progress", "freezing writes", (FenceWrites(reason=why, instance=old.id, group=old.parameter_group or "", parameter=parameter),))
    if not fence.holding:
        return _ends(f"the write fence on {old.id} was lifted ({fence.outcome or 'no reason recorded'}); nothing else was changed")
    if old.status != AVAILABLE:  # the old primary failed meanwhile: a failover's decision, not this switchover's
        return _ends(f"{old.id} is {old.status}: the switchover ends (its fence lifted) and a failover decides")
    limit = cfg.switchover.catch_up_seconds
    if (topo.now - fence.requested_at).total_seconds() > limit:
        missing = (
            f"{new.id} did not replay {old.id}'s final write position" if fence.position is not None else f"the write fence on {old.id} did not take effect"
        )
        return _ends(f"{missing} within switchover.catch_up_seconds ({limit}s) of the fence" + (f" ({view.error})" if view.error else ""))
    broken = undone(fence, view)
    if broken is not None and fence.position is not None:  # writes may have reached it since the seal: promote nothing
        return _ends(f"the write fence on {old.id} was undone after its seal ({broken}, changed by someone else); nothing was promoted")
    if fence.position is None:
        if broken is not None and view.parameter is not None:  # not applied yet (a retried call), or put back: set it
            why = f"{fence.parameter} is {view.parameter} in {fence.group}: the fence is not in effect yet"
            return Plan("progress", "freezing writes", (FenceWrites(reason=why, instance=old.id, group=fence.group, parameter=fence.parameter, again=True),))
        if view.frozen:
            return Plan("progress", "sealing", (SealWrites(reason=f"{old.id} starts no writing transaction any more", instance=old.id),))
        held = (topo.now - fence.requested_at).total_seconds()
        if view.frozen is False and not old.engine.startswith("postgres") and held >= UNBLOCK_AFTER_SECONDS:
            why = f"read_only has not taken effect on {old.id} {held:.1f}s after the fence: a running statement holds it back"
            return Plan("progress", "unblocking the fence", (UnblockFence(reason=why, instance=old.id),))
        why = f"waiting for {fence.parameter}=1 to take effect on {old.id}" + (f" ({view.error})" if view.error else "")
        return Plan("waiting", why, (Wait(reason=why),))
    if view.replayed is not None and view.replayed >= fence.position:
        return None
    seen = "unknown" if view.replayed is None else f"{view.replayed:.0f}"
    why = f"waiting for {new.id} to replay {old.id}'s final write position {fence.position:.0f} (replayed: {seen})" + (f"; {view.error}" if view.error else "")
    return Plan("waiting", why, (Wait(reason=why),))


def _ends(why: str) -> Plan:
    """The switchover ends here, before any promotion: `plan_workflow` adds the fence's lifting and the abort."""
    return Plan("blocked", why)
