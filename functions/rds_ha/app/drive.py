"""Driving a cluster: run the workflow's steps until it completes, must wait past the deadline, or
fails a step; with no workflow, keep DNS, replicas and Multi-AZ as they should be. The caller holds
the lease; every look at AWS renews it first, so a run that lost it stops before changing anything."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from ..core.actions import ChangeRecords, CreateReplica, Plan
from ..core.config import ClusterConfig
from ..core.models import ClusterState, Topology
from ..core.planner import in_progress, pause_limitation, plan_steady, plan_workflow
from .deps import Deps
from .results import Result
from .snapshot import NOTHING_KNOWN, Known

FROZEN_POLL_SECONDS = 0.5


class Drive:
    def __init__(self, deps: Deps) -> None:
        self.d = deps

    def run(
        self,
        cfg: ClusterConfig,
        deadline: datetime,
        known: Known = NOTHING_KNOWN,
        first: Topology | None = None,
        dns_only: bool = False,
        on_first: Callable[[Topology], None] | None = None,
    ) -> Result:
        """`known` (what the caller read) or `first` (a whole topology just read) spare the first look;
        after any change the topology is read again. `dns_only`: an RDS event's sync (records only).
        `on_first` sees the run's first look, before anything is changed."""
        done: tuple[str, ...] = ()
        last: tuple[str, ...] = ()
        while True:
            self.d.leases.ensure(cfg.name)
            topo = first or self.d.snapshots.read(cfg, check_writer=not dns_only, known=known, fence=not dns_only)
            first = None
            # While writes are frozen the lease is short: a run that dies then keeps them frozen no longer than it.
            self.d.leases.ensure(cfg.name, frozen=self._frozen(topo.state))
            if on_first is not None:
                on_first(topo)
                on_first = None
            settled = self._settled(topo, done, dns_only)
            if settled is not None:
                return settled
            plan = plan_workflow(topo)
            out = self.d.executor.execute(topo, plan)
            done += tuple(out.done)
            # Replicas just created are described with the rest next time.
            known = Known(hint=frozenset(topo.instances) | {a.instance for a in plan.actions if isinstance(a, CreateReplica)})
            ended = self._ended(cfg, plan, out.error, done, last, deadline)
            if ended is not None and ended.outcome == "retrying" and self._frozen(out.state, deadline):
                # Writes are refused meanwhile: a step that failed (a seal whose sessions took long to go)
                # is tried again by this run, not left for the next (which may be a reconcile that cannot).
                self.d.clock.sleep(FROZEN_POLL_SECONDS)
                last = ()
                continue
            if ended is not None:
                return ended
            attempted = tuple(a.describe() for a in plan.mutating)
            if attempted:
                last = attempted  # looked at again at once: the plan after it may differ
            else:
                self.d.clock.sleep(self._poll(out.state))

    def _frozen(self, state: ClusterState, deadline: datetime | None = None) -> bool:
        """Does a write fence hold with the writer not moved yet, in `state` as the steps just left it (and,
        given a deadline, is there time left before it)?"""
        wf = state.workflow
        if wf is None or wf.fence is None or not wf.fence.holding or wf.writer_moved_at is not None:
            return False
        return deadline is None or self.d.clock.now() + timedelta(seconds=FROZEN_POLL_SECONDS) <= deadline

    def _poll(self, state: ClusterState) -> float:
        """How long to wait before the next look: at most FROZEN_POLL_SECONDS while a write fence holds and
        the writer has not moved yet (every second of the wait is a second of refused writes)."""
        return min(self.d.poll_seconds, FROZEN_POLL_SECONDS) if self._frozen(state) else self.d.poll_seconds

    def _settled(self, topo: Topology, done: tuple[str, ...], dns_only: bool) -> Result | None:
        """Paused, no workflow, or an RDS event's sync while a workflow runs: the run ends here."""
        cfg, state = topo.cluster, topo.state
        paused = pause_limitation(state, automatic=state.workflow is None or not state.workflow.manual)
        if paused is not None:  # decide, say what would be done, change nothing
            plan = plan_steady(topo) if state.workflow is None else plan_workflow(topo)
            return Result(cfg.name, "paused", f"{paused}; {plan.reason}", done + tuple(f"would {a.describe()}" for a in plan.mutating))
        if state.workflow is None:
            plan = plan_steady(topo)
            if dns_only:  # records only; replicas and Multi-AZ are reconcile's
                plan = replace(plan, actions=tuple(a for a in plan.actions if isinstance(a, ChangeRecords)))
            out = self.d.executor.execute(topo, plan)
            return Result(cfg.name, "steady", plan.reason, done + tuple(out.done), error=out.errors)
        if dns_only:
            return Result(cfg.name, "waiting", f"{in_progress(state)}; its own run and reconcile drive it", done)
        return None

    def _ended(self, cfg: ClusterConfig, plan: Plan, error: str | None, done: tuple[str, ...], last: tuple[str, ...], deadline: datetime) -> Result | None:
        """After a plan's execution: the result if the run ends here, None to look again."""
        if error:
            return Result(cfg.name, "retrying", f"a step failed and will be retried: {error}", done, error=error)
        if plan.outcome in {"complete", "blocked"}:
            return Result(cfg.name, plan.outcome, plan.reason, done)
        attempted = tuple(a.describe() for a in plan.mutating)
        if attempted:
            if attempted == last:  # the same actions twice: AWS did not take them; stop, don't spin
                return Result(cfg.name, "waiting", f"no progress after {', '.join(attempted)}", done)
            return None
        if self.d.clock.now() + timedelta(seconds=self.d.poll_seconds) > deadline:
            return Result(cfg.name, "waiting", f"{plan.reason} (reconcile continues)", done)
        return None
