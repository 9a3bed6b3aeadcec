"""The executor on in-memory ports (core.ports): what it does with a plan when AWS refuses a step, when a
plan has gone stale, and what it records. No moto: nothing here depends on an AWS behaviour."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rds_ha.app.executor import Executor
from rds_ha.app.hooks import HookCalls
from rds_ha.app.recorder import Recorder
from rds_ha.core.actions import CreateReplica, DeleteInstance, Fence, Plan, Promote
from rds_ha.core.errors import InstanceStateError, StateConflictError
from rds_ha.core.models import ClusterState, Instance

from .topo import NOW, inst, topo, workflow


@dataclass
class FakeState:
    state: ClusterState | None = None
    history: list[tuple[str, str]] = field(default_factory=list)
    conflicts: int = 0

    def get_state(self, cluster: str) -> ClusterState | None:
        return self.state

    def put_state(self, state: ClusterState) -> ClusterState:
        if self.conflicts:
            self.conflicts -= 1
            assert self.state is not None
            self.state = self.state.model_copy(update={"version": self.state.version + 1})
            raise StateConflictError("changed concurrently")
        if self.state is not None and state.version != self.state.version:
            raise StateConflictError("stale version")
        self.state = state.model_copy(update={"version": state.version + 1})
        return self.state

    def add_history(self, cluster: str, at: datetime, kind: str, message: str, details: dict[str, Any] | None = None) -> None:
        self.history.append((kind, message))


@dataclass
class FakeRds:
    instances: dict[str, Instance]
    calls: list[str] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)

    def _call(self, what: str) -> None:
        self.calls.append(what)
        if what.split()[0] in self.refuse:
            raise InstanceStateError(f"{what} refused", code="InvalidDBInstanceState")

    def describe(self, region: str, instance_id: str) -> Instance:
        return self.instances[instance_id]

    def promote(self, region: str, instance_id: str, backup_retention: int) -> None:
        self._call(f"promote {instance_id}")

    def create_replica(self, region: str, instance_id: str, source: str, *args: Any, **kwargs: Any) -> None:
        self._call(f"create {instance_id}")

    def delete_replica(self, region: str, instance_id: str) -> None:
        self._call(f"delete {instance_id}")

    def modify_multi_az(self, region: str, instance_id: str, enabled: bool) -> None:
        self._call(f"modify {instance_id}")

    def set_deletion_protection(self, region: str, instance_id: str, enabled: bool) -> None:
        self._call(f"protect {instance_id}")

    def stop(self, region: str, instance_id: str) -> None:
        self._call(f"stop {instance_id}")

    def add_tags(self, region: str, arn: str, tags: Mapping[str, str]) -> None:
        self._call(f"tag {arn.rpartition(':')[2]}")


class Nothing:
    def change(self, *args: Any) -> str:
        return "C1"

    def retarget_alarm(self, *args: Any) -> bool:
        return True

    def ask(self, *args: Any) -> dict[str, Any]:
        return {}

    def tell(self, *args: Any) -> None:
        return None

    def exists(self, arn: str) -> bool:
        return True


class Clock:
    def now(self) -> datetime:
        return NOW

    def sleep(self, seconds: float) -> None:
        return None


def _executor(*instances: Instance, refuse: set[str] | None = None) -> tuple[Executor, FakeState, FakeRds]:
    state = FakeState(ClusterState(cluster="orders", primary="db"))
    rds = FakeRds({i.id: i for i in instances}, refuse=refuse or set())
    recorder = Recorder(state, None, Clock(), None)  # type: ignore[arg-type]
    executor = Executor(rds, Nothing(), Nothing(), state, recorder, HookCalls(Nothing(), recorder), Clock())  # type: ignore[arg-type]
    return executor, state, rds


def test_a_delete_planned_while_the_instance_was_a_replica_is_refused_once_it_is_standalone() -> None:
    planned = topo(inst("db"), inst("r1", source="db"), inst("r2", source="db"))
    executor, state, rds = _executor(inst("db"), inst("r1"), inst("r2", source="db"))  # r1 was promoted meanwhile
    plan = Plan("start", "scale in", (DeleteInstance(reason="scale in", instance="r1"), DeleteInstance(reason="scale in", instance="r2")))
    out = executor.execute(planned, plan)
    assert rds.calls == ["delete r2"], rds.calls  # the stale delete never reached RDS; the plan went on
    refused = [m for k, m in state.history if k == "step_failed"]
    assert refused == ["delete orphan replica r1 failed: refused to delete r1: re-read just before the call, it is no longer a read replica"], refused
    assert out.error is None and out.done == ["delete orphan replica r2"]


def test_a_refused_scaling_create_gives_its_cooldown_back() -> None:
    executor, state, rds = _executor(inst("db"), refuse={"create"})
    create = CreateReplica(reason="scale out", instance="orders-abc-1", source="db", region="us-east-1", scaling="scale_out")
    out = executor.execute(topo(inst("db")), Plan("start", "scale out", (create,)))
    assert rds.calls == ["create orders-abc-1"] and out.error is not None
    assert state.state is not None and state.state.last_scale_out_at is None


def test_a_failed_marker_step_does_not_hold_up_the_promotion_behind_it() -> None:
    executor, state, rds = _executor(inst("db"), inst("r1", source="db"), refuse={"tag"})
    state.state = _with_workflow()
    plan = Plan("progress", "promoting", (Fence(reason="old primary", instance="db"), Promote(reason="best", instance="r1")))
    out = executor.execute(topo(inst("db"), inst("r1", source="db"), state=_with_workflow()), plan)
    assert rds.calls == ["tag db", "promote r1"] and out.error is None and out.done == ["promote r1 (BackupRetentionPeriod=1)"]


def test_a_state_write_that_loses_a_race_to_an_operator_is_redone_on_the_fresh_item() -> None:
    executor, state, _ = _executor(inst("db"), inst("r1", source="db"))
    state.state = _with_workflow()
    state.conflicts = 2  # an operator's pause and ack land between read and write
    out = executor.execute(
        topo(inst("db"), inst("r1", source="db"), state=state.state), Plan("progress", "promoting", (Promote(reason="best", instance="r1"),))
    )
    assert out.error is None and out.state.workflow is not None and out.state.workflow.promote_issued_at == NOW


def _with_workflow() -> ClusterState:
    return ClusterState(cluster="orders", primary="db", workflow=workflow())
