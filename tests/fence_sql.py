"""The write fence's SQL on moto, where no server answers it: a stand-in that reads the old primary as read-only
once its parameter group says so (shared by the fence's tests and the randomized interleavings)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from rds_ha.app.executor import CrashPoint
from rds_ha.core.models import Instance
from rds_ha.handlers.reconcile import handler as reconcile
from rds_ha.probe.model import EngineError

from .builders import Sandbox, context

# The stack's ReconcileSchedule: every minute.
RECONCILE_PERIOD = 60

SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds-ha/orders/master"
FENCE = f"    switchover: {{max_lag_seconds: 30, catch_up_seconds: 30, fence: {{secret_arn: '{SECRET}', tls: disable}}}}\n"
FINAL = 1000.0  # the old primary's final write position, as the stand-in seals it


class StandIn:
    """The fence's SQL: `frozen` from the old primary's parameter group, `seal` at FINAL, `replayed` as told;
    `reachable` False (or a function saying so, asked at each call): a process that reaches no database."""

    def __init__(self, aws: Sandbox, replayed: Callable[[], float] = lambda: math.inf, reachable: bool | Callable[[], bool] = True) -> None:
        self.aws, self._replayed, self.reachable = aws, replayed, reachable
        self.sealed = 0

    def _reach(self, instance: Instance) -> None:
        reachable = self.reachable() if callable(self.reachable) else self.reachable
        if not reachable:
            raise EngineError("down", f"connection to {instance.endpoint} refused")

    def frozen(self, instance: Instance) -> bool:
        self._reach(instance)
        try:
            return parameter(self.aws, instance.parameter_group or "") == "1"
        except ClientError as exc:  # the stand-in reads moto; the real fence's failures are EngineErrors
            raise EngineError("down", f"{instance.id}: {exc}") from exc

    def seal(self, instance: Instance) -> float:
        self._reach(instance)
        self.sealed += 1
        return FINAL

    def replayed(self, instance: Instance) -> float | None:
        self._reach(instance)
        return self._replayed()

    def overrides(self, instance: Instance) -> tuple[str, ...]:
        self._reach(instance)
        return ()

    def unblock(self, instance: Instance) -> int:
        self._reach(instance)
        return 0


def parameter(aws: Sandbox, group: str, name: str = "default_transaction_read_only") -> str | None:
    params = aws.rds().describe_db_parameters(DBParameterGroupName=group)["Parameters"]
    return next((p["ParameterValue"] for p in params if p["ParameterName"] == name), None)


def use(aws: Sandbox, fence: StandIn) -> StandIn:
    aws.service.deps.executor.fences = lambda cfg: fence if cfg.switchover.fence else None
    aws.service.deps.snapshots.fences = aws.service.deps.executor.fences
    return fence


def frozen_for(aws: Sandbox, switchover: Callable[[], Any], dies_after: float, phase: float) -> float:
    """Seconds the old primary's writes stay frozen when `switchover` (a fenced one whose target never replays
    the final position) is killed -9 `dies_after` seconds after its fence, and reconcile (reaching no database)
    runs every RECONCILE_PERIOD seconds from `phase` seconds after the fence."""
    use(aws, StandIn(aws, replayed=lambda: FINAL - 1))
    rds = aws.service.deps.rds
    changes: list[tuple[Any, str]] = []
    real = rds.set_parameter

    def recorded(region: str, group: str, name: str, value: str) -> None:
        real(region, group, name, value)
        changes.append((aws.clock.now(), value))

    def killed(now: Any) -> None:
        if changes and (now - changes[0][0]).total_seconds() >= dies_after:
            raise CrashPoint("kill -9")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rds, "set_parameter", recorded)
        patch.setattr(aws.service.deps.table, "release_lease", lambda *a, **k: None)
        stop = aws.clock.watch(killed)
        try:
            with pytest.raises(CrashPoint):
                switchover()
        finally:
            stop()
        fenced_at = changes[0][0]
        use(aws, StandIn(aws, reachable=False))  # the reconcile Lambda
        elapsed = (aws.clock.now() - fenced_at).total_seconds()  # the schedule's next run: phase + k * period
        aws.clock.advance(phase + math.ceil(max(0.0, elapsed - phase) / RECONCILE_PERIOD) * RECONCILE_PERIOD - elapsed)
        while len(changes) < 2 and (aws.clock.now() - fenced_at).total_seconds() < 900:
            reconcile({}, context())
            aws.clock.advance(RECONCILE_PERIOD)
    assert [v for _, v in changes] == ["1", "0"], changes
    return float((changes[1][0] - fenced_at).total_seconds())
