"""A planned change of primary while the old one is healthy: wait (up to switchover.catch_up_seconds)
for the target to catch up, ask the pre_failover hook, then run the same workflow as a failover
(promote, writer, fence, rebuild)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta

from ..core.actions import Plan
from ..core.config import ClusterConfig
from ..core.models import Topology
from ..core.planner import FailoverRequest, decide_switchover
from .deps import Deps
from .drive import Drive
from .failover import decided
from .results import Result, joined
from .runs import under_lease


class Switchover:
    def __init__(self, deps: Deps, drive: Drive) -> None:
        self.d, self.drive = deps, drive

    def _decide(self, cfg: ClusterConfig, request: FailoverRequest, sharers: Mapping[str, tuple[str, ...]]) -> tuple[Topology, Plan, Result]:
        topo = replace(self.d.snapshots.read(cfg), group_sharers=sharers)
        plan = decide_switchover(topo, request)
        return topo, plan, decided(cfg, topo, plan)

    def switchover(self, cfg: ClusterConfig, target: str | None, by: str, deadline: datetime, dry_run: bool = False) -> Result:
        now = self.d.clock.now()
        # The primary it was asked about: a failover that moves the primary while it waits ends it (each look refuses).
        expected = self.d.snapshots.state(cfg).primary
        request = FailoverRequest(
            trigger=f"switchover by {by}",
            failure_time=now,
            workflow_id=uuid.uuid4().hex[:6],
            automatic=False,
            target=target,
            planned=True,
            expected_primary=expected,
        )
        sharers = self._sharers(cfg)
        if dry_run:
            return self._decide(cfg, request, sharers)[2]
        give_up = min(deadline, now + timedelta(seconds=cfg.switchover.catch_up_seconds))
        while True:
            # The catch-up wait holds no lease between looks: a failure of the primary meanwhile is
            # failed over at once (the next look finds that failover, or the primary down, and refuses).
            looked: list[Result] = []

            def look(looked: list[Result] = looked) -> Result:
                topo, plan, result = self._decide(cfg, request, sharers)
                if plan.outcome == "waiting" and self.d.clock.now() + timedelta(seconds=self.d.poll_seconds) <= give_up:
                    looked.append(result)
                    left = (give_up - self.d.clock.now()).total_seconds()
                    self.d.recorder.progress("catching_up", f"{plan.reason} ({left:.0f}s left of switchover.catch_up_seconds)")
                    return result
                return self._switch(cfg, request, deadline, topo, plan, result)

            result = under_lease(self.d, cfg, request.trigger, look)
            if not looked:
                return result
            self.d.clock.sleep(self.d.poll_seconds)

    def _switch(self, cfg: ClusterConfig, request: FailoverRequest, deadline: datetime, topo: Topology, plan: Plan, result: Result) -> Result:
        """A switchover's decision, under the lease: refuse (recorded, notified), or ask the hook and run the workflow."""
        if plan.outcome != "start":
            if plan.outcome == "waiting":
                gave_up = f"gave up after {cfg.switchover.catch_up_seconds}s (switchover.catch_up_seconds)"
                result = replace(result, outcome="refused", reason=joined(plan.reason, gave_up))
            self._refused(topo, "switchover_refused", result.reason, request.trigger)
            return result
        veto = self.d.hooks.veto(topo, plan, request.trigger)
        if veto is not None:
            self._refused(topo, "switchover_vetoed", veto, request.trigger)
            return Result(cfg.name, "vetoed", veto, candidates=result.candidates, chosen=result.chosen)
        state = self.d.executor.execute(topo, plan).state
        # A fenced switchover's first step needs a look over SQL that the decision's topology did not take.
        first = None if cfg.switchover.fence is not None else replace(topo, state=state)
        return result.then(self.drive.run(cfg, deadline, first=first))

    def _sharers(self, cfg: ClusterConfig) -> dict[str, tuple[str, ...]]:
        """With switchover.fence: every instance of the primary's region by the parameter group it uses, once per
        switchover (DescribeDBInstances has no filter by group): a group shared outside the cluster is refused too."""
        if cfg.switchover.fence is None:
            return {}
        state = self.d.snapshots.state(cfg)
        out: dict[str, list[str]] = {}
        for inst in self.d.rds.describe_all(state.primary_region or cfg.region):
            if inst.parameter_group and inst.cluster_tag != cfg.name:
                out.setdefault(inst.parameter_group, []).append(inst.id)
        return {group: tuple(ids) for group, ids in out.items()}

    def _refused(self, topo: Topology, kind: str, reason: str, trigger: str) -> None:
        self.d.recorder.history(topo.cluster.name, kind, reason, trigger=trigger)
        self.d.recorder.notify(topo.cluster, kind, reason, unplanned=False, primary=topo.state.primary)
