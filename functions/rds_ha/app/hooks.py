"""The cluster's hooks: the pre_failover hook may veto a promotion, the post_failover hook hears how it
ended. Both payloads are built here, from the same workflow fields."""

from __future__ import annotations

from typing import Any

from ..adapters.hooks import Hooks
from ..core.actions import Plan, StartWorkflow
from ..core.errors import HookError
from ..core.models import Topology, Workflow
from .recorder import Recorder


def _workflow_fields(cluster: str, wf: Workflow) -> dict[str, Any]:
    return {"planned": wf.kind != "failover", "cluster": cluster, "old_primary": wf.old_primary, "new_primary": wf.new_primary}


class HookCalls:
    def __init__(self, hooks: Hooks, recorder: Recorder) -> None:
        self.hooks, self.recorder = hooks, recorder

    def exists(self, arn: str) -> bool:
        return self.hooks.exists(arn)

    def veto(self, topo: Topology, plan: Plan, trigger: str) -> str | None:
        """Ask the pre_failover hook about the workflow the plan starts; the veto's reason, or None to
        proceed. A hook that does not answer in time or fails decides by hooks.on_timeout; either way it is recorded."""
        hooks, cfg = topo.cluster.hooks, topo.cluster
        start = next((a for a in plan.actions if isinstance(a, StartWorkflow)), None)
        if hooks.pre_failover is None or start is None or start.workflow is None:
            return None
        wf = start.workflow
        payload = {"type": f"pre_{wf.kind}", **_workflow_fields(cfg.name, wf), "reason": plan.reason, "trigger": trigger}
        payload["candidates"] = {v.instance: v.reason for v in plan.candidates}
        try:
            reply = self.hooks.ask(hooks.pre_failover, payload, hooks.timeout_seconds)
        except HookError as exc:
            if hooks.on_timeout == "veto":
                return f"vetoed: {exc} (hooks.on_timeout is veto)"
            self.recorder.history(cfg.name, "hook_failed", f"{exc}; proceeding (hooks.on_timeout is proceed)", hook=hooks.pre_failover)
            return None
        if reply.get("veto") is True:
            why = str(reply.get("reason") or "no reason given")[:300]
            return f"vetoed by the pre_failover hook: {why}"
        return None

    def ended(self, topo: Topology, wf: Workflow, outcome: str, message: str) -> None:
        """Tell the post_failover hook how the workflow ended (asynchronous; a failure is recorded, never raised)."""
        arn = topo.cluster.hooks.post_failover
        if arn is None:
            return
        payload = {"type": f"post_{wf.kind}", "outcome": outcome, **_workflow_fields(topo.cluster.name, wf)}
        payload |= {"message": message, "started_at": wf.started_at.isoformat()}
        try:
            self.hooks.tell(arn, payload)
        except HookError as exc:
            self.recorder.history(topo.cluster.name, "hook_failed", str(exc), hook=arn)
