"""RDS Proxy follows the primary: after a failover and a switchover, against drift, through crashes and
refusals; `apply` refuses a proxy that does not serve the primary. What is asserted is what an operator
checks: DescribeDBProxyTargets, the writer record, the state table, the history and the pages."""

from __future__ import annotations

from typing import Any

import pytest

from rds_ha.core.config import parse_config
from rds_ha.core.errors import ConfigError
from rds_ha.handlers.failover import handler
from rds_ha.handlers.reconcile import handler as reconcile_handler
from rds_ha.local import sandbox

from ..builders import CONFIG, Sandbox, alarm_event, build_cluster, context


def _reconcile_until_done(aws: Sandbox, rounds: int = 30) -> None:
    for _ in range(rounds):
        if aws.state().workflow is None:
            return
        aws.clock.advance(60)
        reconcile_handler({}, context())


def _refuse(aws: Sandbox, operation: str, code: str = "AccessDenied") -> list[int]:
    """Make every `operation` call fail before it reaches (moto's) AWS, as IAM refuses it; a live count of refusals."""
    from types import SimpleNamespace

    refused = [0]

    def refuse(**_: Any) -> Any:
        refused[0] += 1
        parsed = {"Error": {"Code": code, "Message": "refused by the test"}, "ResponseMetadata": {"HTTPStatusCode": 403}}
        return SimpleNamespace(status_code=403, headers={}, content=b""), parsed

    aws.clients.client("rds", "us-east-1").meta.events.register(f"before-call.rds.{operation}", refuse, unique_id=f"refuse-{operation}")
    return refused


def _allow(aws: Sandbox, operation: str) -> None:
    aws.clients.client("rds", "us-east-1").meta.events.unregister(f"before-call.rds.{operation}", unique_id=f"refuse-{operation}")


def test_a_failover_moves_the_proxy_and_completes_only_once_the_new_primary_is_available(aws: Sandbox) -> None:
    build_cluster(aws, proxy=True)
    # RDS takes its time: the promotion 30 s, the proxy's connection to a new target 400 s (past the handler's wait).
    aws.fidelity.promote_seconds, aws.fidelity.proxy_register_seconds = 30, 400
    aws.clock.advance(400)
    assert aws.proxy_targets() == [("orders-db", "AVAILABLE")]

    handler(alarm_event("eventbridge", aws.clock.now()), context())

    # The writer moved; the proxy targets the new primary alone, which is still REGISTERING.
    assert aws.writer_targets() == [aws.endpoint("orders-db-r2")]
    assert aws.proxy_targets() == [("orders-db-r2", "REGISTERING")]
    state = aws.state()
    assert state.workflow is not None and "proxy orders-proxy's target orders-db-r2 is REGISTERING" in state.workflow.step
    kinds = aws.history_kinds()
    # The old primary left the proxy once the promotion was issued; the new one joined once it accepted writes.
    moves = [h["message"] for h in reversed(aws.service.history("orders")) if h["kind"] == "proxy_moved"]
    assert [m.split(":")[1].strip() for m in moves] == ["deregister orders-db", "register orders-db-r2"], moves
    assert kinds.index("promote_issued") > kinds.index("proxy_moved")  # history is newest first

    aws.clock.advance(60)
    reconcile_handler({}, context())
    assert aws.state().workflow is not None  # still REGISTERING: not complete
    _reconcile_until_done(aws)
    assert aws.state().workflow is None and aws.state().primary == "orders-db-r2"
    assert aws.proxy_targets() == [("orders-db-r2", "AVAILABLE")]


def test_a_switchover_moves_the_proxy(aws: Sandbox) -> None:
    build_cluster(aws, {"orders-db-r1": ("us-east-1b", 12.0), "orders-db-r2": ("us-east-1c", 0.5)}, proxy=True)
    aws.set_alarm("OK")
    result = aws.service.switchover(aws.cfg, "orders-db-r2", "test", aws.clock.now())
    assert result.outcome in {"start", "complete", "progress", "waiting"}, result.reason
    _reconcile_until_done(aws)
    assert aws.state().primary == "orders-db-r2"
    assert aws.proxy_targets() == [("orders-db-r2", "AVAILABLE")]
    assert aws.writer_targets() == [aws.endpoint("orders-db-r2")]


# A clean failover of the cluster with a proxy: the 12 steps of tests/integration/test_recovery.py and the proxy's
# move (moto promotes at once: the old primary's deregistration and the new one's registration are one step).
STEPS = 13


def test_a_failover_with_a_proxy_has_one_more_step(aws: Sandbox) -> None:
    build_cluster(aws, proxy=True)
    steps: list[str] = []
    aws.service.deps.executor.after_step = steps.append
    handler(alarm_event("eventbridge", aws.clock.now()), context())
    assert len(steps) == STEPS, steps
    assert [s for s in steps if s.startswith("proxy orders-proxy")] == ["proxy orders-proxy (default): deregister orders-db, then register orders-db-r2"]


@pytest.mark.parametrize("crash_after", range(1, STEPS + 1))
def test_a_crash_after_any_step_is_finished_by_reconcile_with_the_old_primary_deregistered(aws: Sandbox, crash_after: int) -> None:
    build_cluster(aws, proxy=True)
    aws.crash_after(crash_after, lambda: handler(alarm_event("eventbridge", aws.clock.now()), context()))
    aws.clock.advance(600)  # the dead run's lease expires
    reconcile_handler({}, context())
    _reconcile_until_done(aws)
    assert aws.state().workflow is None and aws.state().primary == "orders-db-r2"
    assert aws.proxy_targets() == [("orders-db-r2", "AVAILABLE")]
    assert aws.writer_targets() == [aws.endpoint("orders-db-r2")]


def test_proxy_calls_failing_leave_the_writer_moved_and_are_paged_and_retried(aws: Sandbox) -> None:
    build_cluster(aws, proxy=True)
    _, queue = aws.subscribe()
    refused = _refuse(aws, "RegisterDBProxyTargets")

    handler(alarm_event("eventbridge", aws.clock.now()), context())

    assert refused[0] >= 1
    assert aws.writer_targets() == [aws.endpoint("orders-db-r2")]  # recovery is not held by the proxy
    assert aws.state().primary == "orders-db-r2"
    assert aws.proxy_targets() == []  # the old primary is out, never left registered
    pages = [m for m in aws.messages(queue) if m.get("type") == "failover_step_failed"]
    assert any("proxy orders-proxy" in m["message"] for m in pages), pages
    assert aws.state().workflow is not None  # not complete while the proxy does not serve the new primary

    _allow(aws, "RegisterDBProxyTargets")
    _reconcile_until_done(aws)
    assert aws.state().workflow is None
    assert aws.proxy_targets() == [("orders-db-r2", "AVAILABLE")]


def test_a_proxy_that_never_serves_the_new_primary_blocks_the_workflow_at_the_deadline(aws: Sandbox) -> None:
    build_cluster(aws, proxy=True)
    _, queue = aws.subscribe()
    _refuse(aws, "RegisterDBProxyTargets")
    handler(alarm_event("eventbridge", aws.clock.now()), context())
    _reconcile_until_done(aws, rounds=70)  # failover.deadline_seconds is 3600
    state = aws.state()
    assert state.workflow is None and state.primary == "orders-db-r2"
    assert state.blocked is not None and "proxy orders-proxy" in state.blocked.reason and "deadline" in state.blocked.reason
    assert any(m.get("type") == "failover_aborted" for m in aws.messages(queue))
    # Reconcile keeps trying: once AWS takes the call, the proxy follows.
    _allow(aws, "RegisterDBProxyTargets")
    aws.clock.advance(60)
    reconcile_handler({}, context())
    assert aws.proxy_targets()[0][0] == "orders-db-r2"


def test_reconcile_repairs_a_proxy_that_drifted_from_the_primary(aws: Sandbox) -> None:
    build_cluster(aws, proxy=True)
    aws.set_alarm("OK")
    rds = aws.rds()
    rds.deregister_db_proxy_targets(DBProxyName=sandbox.PROXY, TargetGroupName="default", DBInstanceIdentifiers=["orders-db"])
    rds.register_db_proxy_targets(DBProxyName=sandbox.PROXY, TargetGroupName="default", DBInstanceIdentifiers=["orders-db-r1"])
    check = aws.service.check(aws.cfg)
    assert any("targets orders-db-r1, not the primary orders-db" in r for r in check.reasons), check.reasons

    reconcile_handler({}, context())

    assert [i for i, _ in aws.proxy_targets()] == ["orders-db"]
    moved = [h for h in aws.service.history("orders") if h["kind"] == "proxy_moved"]
    assert moved and "deregister orders-db-r1, then register orders-db" in moved[0]["message"]
    aws.clock.advance(60)
    assert not [r for r in aws.service.check(aws.cfg).reasons if "proxy" in r]


def _proxy_config(aws: Sandbox, proxy: str) -> Any:
    text = CONFIG.format(
        min=2, zone=aws.zone_id, max_lag=30, cooldown=600, extra_failover="", alarms="orders-primary-down", extra=f"    proxy: {{name: {proxy}}}\n"
    )
    return parse_config(text, "orders.yaml").clusters[0]


def test_apply_refuses_a_proxy_that_does_not_target_the_primary(aws: Sandbox) -> None:
    build_cluster(aws)
    sandbox.create_proxy(aws.clients, target="orders-db-r1")
    with pytest.raises(ConfigError, match="proxy orders-proxy \\(default\\) targets orders-db-r1, not the primary orders-db alone"):
        aws.service.apply([_proxy_config(aws, sandbox.PROXY)], "orders.yaml", "test")
    with pytest.raises(ConfigError, match="proxy nope-proxy not found in us-east-1"):
        aws.service.apply([_proxy_config(aws, "nope-proxy")], "orders.yaml", "test")
    assert aws.service.cluster("orders").proxy is None  # nothing stored


def test_apply_refuses_a_proxy_of_another_engine_family_and_names_the_arns_iam_needs(aws: Sandbox) -> None:
    build_cluster(aws)
    sandbox.create_proxy(aws.clients, name="mysql-proxy", engine_family="MYSQL")
    with pytest.raises(ConfigError, match="proxy mysql-proxy is for MYSQL, and orders-db runs postgres \\(POSTGRESQL\\)"):
        aws.service.apply([_proxy_config(aws, "mysql-proxy")], "orders.yaml", "test")
    arn = sandbox.create_proxy(aws.clients, name="pg-proxy")
    notes = aws.service.apply([_proxy_config(aws, "pg-proxy")], "orders.yaml", "test")
    assert any(arn in n and ":target-group:" in n and "DBProxyArns" in n for n in notes), notes


def test_the_proxy_registers_the_primary_only_in_a_state_rds_proxy_takes(aws: Sandbox) -> None:
    """RegisterDBProxyTargets takes an RDS instance only AVAILABLE, MODIFYING or BACKING_UP (InvalidDBInstanceState
    otherwise): a primary configuring its enhanced monitoring, writable as it is, is waited for, not refused at."""
    from rds_ha.local.moto_fidelity import set_status

    build_cluster(aws, proxy=True)
    aws.set_alarm("OK")
    aws.rds().deregister_db_proxy_targets(DBProxyName=sandbox.PROXY, TargetGroupName="default", DBInstanceIdentifiers=["orders-db"])
    set_status("orders-db", "configuring-enhanced-monitoring")

    reconcile_handler({}, context())

    assert aws.proxy_targets() == []
    kinds = [h["kind"] for h in aws.service.history("orders")]
    assert "step_failed" not in kinds and "proxy_moved" not in kinds, kinds
    set_status("orders-db", "available")
    aws.clock.advance(60)
    reconcile_handler({}, context())
    assert [i for i, _ in aws.proxy_targets()] == ["orders-db"]
