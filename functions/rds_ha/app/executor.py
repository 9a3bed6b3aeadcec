"""The executor: performs a plan's actions idempotently, each by its step in `steps.STEPS`.

Each action is safe to repeat: the planner re-derives what is left from AWS after any crash, and
AWS's own answers for "already done" (an existing replica name, an instance already gone, a
promotion already under way) count as done there. Progress goes to the state table (a versioned
write), and every step's sentence to the recorder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..core.actions import Action, Plan, RecordHandled, Wait
from ..core.clock import Clock
from ..core.config import ClusterConfig
from ..core.errors import AwsError, StateConflictError
from ..core.models import ClusterState, Topology
from ..core.ports import AlarmPort, DnsPort, FencePort, ProxyPort, RdsPort, StatePort
from .hooks import HookCalls
from .lease import Leases
from .recorder import Recorder
from .steps import STEPS

# A state write that lost its version race is redone on the fresh item this many times.
SAVE_ATTEMPTS = 5


class CrashPoint(Exception):  # noqa: N818 - a test hook, not an error users see
    """Raised by a test hook between two steps to simulate the process dying there."""


@dataclass
class Progress:
    """What one plan's execution came to: the state now, the steps done, the error that stopped it,
    and the steps that failed without stopping it (each left to the next run)."""

    state: ClusterState
    done: list[str] = field(default_factory=list)
    error: str | None = None
    failed: list[str] = field(default_factory=list)

    @property
    def errors(self) -> str | None:
        """Every failure of the execution, the one that stopped it first (None: nothing failed)."""
        found = ([self.error] if self.error else []) + self.failed
        return "; ".join(found) or None


class _NoProxies:
    """No proxy adapter was given (in-memory tests): any proxy call fails as AWS would without access."""

    def _refuse(self, *args: object) -> Any:
        raise AwsError("no RDS Proxy access in this executor", code="NoProxyAdapter")

    targets = register = deregister = _refuse


class Executor:
    def __init__(
        self,
        rds: RdsPort,
        route53: DnsPort,
        alarms: AlarmPort,
        table: StatePort,
        recorder: Recorder,
        hooks: HookCalls,
        clock: Clock,
        leases: Leases | None = None,
        fences: Callable[[ClusterConfig], FencePort | None] = lambda cfg: None,
        proxies: ProxyPort | None = None,
    ) -> None:
        self.rds, self.route53, self.alarms, self.table = rds, route53, alarms, table
        self.proxies: ProxyPort = proxies if proxies is not None else _NoProxies()
        self.recorder, self.hooks, self.clock, self.leases = recorder, hooks, clock, leases
        # A cluster's SQL fence (switchover.fence), or None.
        self.fences = fences
        # Tests set this to raise CrashPoint after the Nth AWS mutation (crash-at-every-step proofs).
        self.after_step: Callable[[str], Any] | None = None

    def save(self, state: ClusterState, **update: Any) -> ClusterState:
        """Write this run's `update` of the state. If the item changed since it was read, the writer
        was one that holds no lease (an operator's pause or ack, an apply, an OK alarm clearing
        `blocked`) and touches only its own fields: while this run still holds the lease, nothing
        it owns (workflow, primary, fencing) changed, so the update is redone on the fresh item."""
        for _ in range(SAVE_ATTEMPTS):
            try:
                return self.table.put_state(state.model_copy(update=update))
            except StateConflictError:
                if self.leases is not None:
                    self.leases.ensure(state.cluster)
                fresh = self.table.get_state(state.cluster)
                if fresh is None:
                    raise
                state = fresh
        raise StateConflictError(f"state of {state.cluster} kept changing during {', '.join(update)}; the next run goes on")

    def mark_handled(self, topo: Topology, state: ClusterState, mark: RecordHandled) -> ClusterState:
        """Record an alarm transition as handled outside a plan (a failover decision, whatever it was):
        the same write as the RecordHandled step, not a step of the workflow."""
        return STEPS[RecordHandled](self, topo, state, mark)

    def execute(self, topo: Topology, plan: Plan) -> Progress:
        out = Progress(state=topo.state)
        for action in plan.actions:
            if isinstance(action, Wait):
                if out.state.workflow is not None and out.state.workflow.step != action.reason:
                    out.state = self.save(out.state, workflow=out.state.workflow.model_copy(update={"step": action.reason}))
                continue
            try:
                if self.leases is not None:
                    self.leases.ensure(topo.cluster.name)  # LeaseLostError: this run stalled; it stops here
                out.state = STEPS[type(action)](self, topo, out.state, action)
                out.done.append(action.describe())
            except AwsError as exc:
                self._failed(topo, out, action, exc)
                if action.critical:
                    out.error = str(exc)
                    break
                continue
            if self.after_step is not None:
                self.after_step(action.describe())
        return out

    def _failed(self, topo: Topology, out: Progress, action: Action, exc: AwsError) -> None:
        """A step AWS refused past its retries (or the state forbids now): recorded, and left to the
        next run, which re-plans from what AWS shows. A failed marker or clean-up step must not hold up
        the promotion and the writer behind it. The step may have recorded (and given back) state
        before AWS refused it: the run continues from the stored one."""
        name, what = topo.cluster.name, action.describe()
        if not action.critical:
            out.failed.append(f"{what} failed: {exc}")
        out.state = self.table.get_state(name) or out.state
        self.recorder.history(name, "step_failed", f"{what} failed: {exc}", transient=exc.transient)
        self.recorder.metric("StepFailed", name)
        if not exc.transient or action.paged:  # retrying will not cure it (or clients wait on it): a human must look
            self.recorder.notify(topo.cluster, "failover_step_failed", f"{what} failed: {exc}", code=exc.code, transient=exc.transient)
