"""Planned switchover on moto: the target catches up, is promoted, the writer moves, the old primary is
fenced; and each refusal reason, with nothing changed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from rds_ha.handlers.failover import handler as failover
from rds_ha.local.moto_fidelity import set_status

from ..builders import Sandbox, alarm_event, build_cluster, context
from .test_cli import run


@pytest.fixture
def healthy(aws: Sandbox, monkeypatch: Any) -> Sandbox:
    """The default cluster, primary healthy (alarm OK), the CLI on the test's simulated clock."""
    from rds_ha.cli import main as cli

    build_cluster(aws)  # r1 lags 12 s, r2 2 s
    aws.set_alarm("OK")
    monkeypatch.setattr(cli, "service_factory", lambda settings: aws.service)
    return aws


def test_switchover_waits_for_the_target_to_catch_up_then_moves_the_writer(healthy: Sandbox, capsys: Any, monkeypatch: Any) -> None:
    aws = healthy
    sleeps: list[float] = []
    real_sleep = aws.clock.sleep

    def sleep(seconds: float) -> None:  # r2 catches up while rds-ha waits
        real_sleep(seconds)
        sleeps.append(seconds)
        if len(sleeps) == 2:
            aws.put_lag("orders-db-r2", 0.0, at=aws.clock.now() - timedelta(seconds=5))

    monkeypatch.setattr(aws.clock, "sleep", sleep)
    assert run("switchover", "orders", "--yes") == 0
    output = capsys.readouterr().out
    assert "switchover" in output and "complete" in output
    assert aws.writer_targets() == [aws.endpoint("orders-db-r2")]
    old = aws.instance("orders-db")
    assert old is not None and old["DBInstanceStatus"] == "available"  # healthy, fenced, never deleted
    assert any(t["Key"] == "rds-ha:fenced" for t in old["TagList"])
    state = aws.state()
    assert state.primary == "orders-db-r2" and "orders-db" in state.fenced
    assert state.last_failover_at is None  # planned: no anti-flapping cooldown for the next real failover
    kinds = aws.history_kinds()
    assert "switchover_started" in kinds and "switchover_completed" in kinds and "failover_started" not in kinds
    assert len(sleeps) >= 2


def caught_up(aws: Sandbox, replica: str = "orders-db-r2") -> None:
    """A minute later, CloudWatch shows `replica` at zero lag."""
    aws.clock.advance(60)
    aws.put_lag(replica, 0.0)


def test_switchover_is_not_unplanned_in_notifications(healthy: Sandbox) -> None:
    aws = healthy
    _, queue = aws.subscribe()
    caught_up(aws)
    result = aws.service.switchover(aws.cfg, "orders-db-r2", "alice", aws.clock.now() + timedelta(seconds=600))  # type: ignore[arg-type]
    assert result.outcome == "complete", result
    messages = aws.messages(queue)
    assert [m["type"] for m in messages] == ["switchover_started", "switchover_completed"]
    assert all(m["unplanned"] is False for m in messages)
    assert messages[1]["old_primary"] == "orders-db" and messages[1]["new_primary"] == "orders-db-r2"


@pytest.mark.parametrize(
    ("arrange", "args", "reason"),
    [
        (lambda aws: set_status("orders-db", "failed"), (), "primary orders-db is failed: that is a failover (rds-ha failover), not a switchover"),
        (lambda aws: None, ("--to", "orders-db"), "orders-db is not a replica of the primary orders-db"),
        (lambda aws: None, ("--to", "nope"), "nope is not a replica of the primary orders-db"),
        (
            lambda aws: [aws.put_lag(r, 99.0) for r in ("orders-db-r1", "orders-db-r2")],
            (),
            "no replica qualifies as the new primary (orders-db-r1: lag 99s > max 30s",
        ),
        (
            lambda aws: aws.put_lag("orders-db-r1", 12.0, at=aws.clock.now()),
            ("--to", "orders-db-r1"),
            "orders-db-r1 lag 12s > switchover.max_lag_seconds 1s: waiting for it to catch up; gave up after 300s",
        ),
    ],
)
def test_switchover_refusals_say_why_and_change_nothing(healthy: Sandbox, capsys: Any, arrange: Any, args: tuple[str, ...], reason: str) -> None:
    aws = healthy
    arrange(aws)
    writer = aws.writer_targets()
    assert run("switchover", "orders", "--yes", *args) == 3
    assert reason in capsys.readouterr().out
    assert aws.promotions() == ["orders-db"] and aws.writer_targets() == writer
    assert "switchover_refused" in aws.history_kinds()


def test_switchover_dry_run_prints_the_plan_and_changes_nothing(healthy: Sandbox, capsys: Any) -> None:
    aws = healthy
    caught_up(aws)
    assert run("switchover", "orders", "--dry-run") == 0
    output = capsys.readouterr().out
    assert "plan (dry run: nothing changed)" in output and "switch over to orders-db-r2" in output and "promote orders-db-r2" in output
    assert aws.promotions() == ["orders-db"] and aws.state().workflow is None


def test_switchover_while_paused_runs_to_its_end_and_a_later_failover_is_not_cooled_down(healthy: Sandbox) -> None:
    aws = healthy
    assert aws.cfg is not None
    aws.service.pause(aws.cfg, "alice", "maintenance")
    caught_up(aws)
    result = aws.service.switchover(aws.cfg, None, "alice", aws.clock.now() + timedelta(seconds=600))
    assert result.outcome == "complete", result
    aws.service.resume(aws.cfg, "alice")
    # The new primary dies a minute later: the automatic failover is not held back by a cooldown.
    aws.clock.advance(60)
    for replica in aws.replicas_of("orders-db-r2"):
        aws.put_lag(replica["DBInstanceIdentifier"], 1.0)
    set_status("orders-db-r2", "failed")
    from rds_ha.local.sandbox import put_alarm

    put_alarm(aws.clients, "orders-primary-down", "orders-db-r2", "ALARM")
    result = failover(alarm_event("eventbridge", aws.clock.now(), instance="orders-db-r2"), context())
    assert result["outcome"] == "complete", result


SWITCHOVER_STEPS = 12  # AWS-mutating steps of a clean switchover of the default cluster (asserted below)


def test_clean_switchover_has_the_expected_number_of_steps(healthy: Sandbox) -> None:
    aws = healthy
    caught_up(aws)
    steps: list[str] = []
    aws.service.deps.executor.after_step = steps.append
    aws.service.switchover(aws.cfg, None, "alice", aws.clock.now() + timedelta(seconds=600))  # type: ignore[arg-type]
    assert len(steps) == SWITCHOVER_STEPS, steps


@pytest.mark.parametrize("crash_after", range(1, SWITCHOVER_STEPS + 1))
def test_crash_after_any_switchover_step_is_finished_by_reconcile(healthy: Sandbox, crash_after: int) -> None:
    from rds_ha.handlers.reconcile import handler as reconcile

    aws = healthy
    caught_up(aws)
    promotes = aws.count_calls("rds", "PromoteReadReplica")
    aws.crash_after(crash_after, lambda: aws.service.switchover(aws.cfg, None, "alice", aws.clock.now() + timedelta(seconds=600)))  # type: ignore[arg-type]
    aws.clock.advance(900)  # the dead run's lease expires
    reconcile({}, context())
    assert promotes[0] == 1
    state = aws.state()
    assert state.primary == "orders-db-r2" and state.workflow is None and "orders-db" in state.fenced
    assert aws.writer_targets() == [aws.endpoint("orders-db-r2")]
    assert len(aws.replicas_of("orders-db-r2")) == 2 and aws.instance("orders-db-r1") is None
    assert aws.history_kinds().count("switchover_completed") == 1
