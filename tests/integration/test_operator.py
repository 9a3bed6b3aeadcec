"""Operator controls: pause/resume (automation records, changes nothing) and cooldown acknowledgement."""

from __future__ import annotations

from typing import Any

from rds_ha.handlers.failover import handler
from rds_ha.handlers.reconcile import handler as reconcile_handler
from rds_ha.local.sandbox import put_alarm

from ..builders import Sandbox, alarm_event, build_cluster, context
from .test_cli import run


def _alarm_now(aws: Sandbox, instance: str = "orders-db") -> dict[str, Any]:
    """The event CloudWatch sends for the alarm's current transition (same timestamp as DescribeAlarms)."""
    alarm = aws.cw().describe_alarms(AlarmNames=["orders-primary-down"])["MetricAlarms"][0]
    return alarm_event("eventbridge", alarm["StateUpdatedTimestamp"], instance=instance)


def test_paused_cluster_records_what_it_would_do_and_changes_nothing(aws: Sandbox, capsys: Any) -> None:
    build_cluster(aws)
    assert run("pause", "orders", "--reason", "storage maintenance") == 0
    writes = aws.count_calls("rds", "PromoteReadReplica")
    dns = aws.count_calls("route53", "ChangeResourceRecordSets")

    result = handler(_alarm_now(aws), context())

    assert result["outcome"] == "paused"
    assert "would promote orders-db-r2" in result["reason"] and "storage maintenance" in result["reason"]
    for _ in range(3):
        aws.clock.advance(60)
        assert reconcile_handler({}, context())["results"][0]["outcome"] == "paused"
    assert writes[0] == 0 and dns[0] == 0
    assert aws.promotions() == ["orders-db"] and aws.writer_targets() == [aws.endpoint("orders-db")]
    assert aws.history_kinds().count("failover_paused") == 1  # recorded once, not every minute
    capsys.readouterr()
    assert run("status", "orders") == 0
    assert "paused by" in capsys.readouterr().out


def test_resume_lets_reconcile_act_on_an_alarm_still_in_alarm(aws: Sandbox) -> None:
    build_cluster(aws)
    assert run("pause", "orders") == 0
    handler(_alarm_now(aws), context())
    assert run("resume", "orders") == 0
    aws.clock.advance(60)
    assert reconcile_handler({}, context())["results"][0]["outcome"] == "complete"
    assert aws.writer_targets() == [aws.endpoint("orders-db-r2")]


def test_ack_lifts_the_cooldown_for_the_next_automatic_failover(aws: Sandbox, capsys: Any) -> None:
    build_cluster(aws, {"orders-db-r1": ("us-east-1b", 3.0), "orders-db-r2": ("us-east-1c", 2.0)})
    handler(alarm_event("eventbridge", aws.clock.now()), context())
    new_replicas = [r["DBInstanceIdentifier"] for r in aws.replicas_of("orders-db-r2")]
    for rid in new_replicas:  # lag just before the next alarm
        aws.put_lag(rid, 1.0)
    put_alarm(aws.clients, "orders-primary-down", "orders-db-r2")  # the alarm now watches the new primary
    aws.clock.advance(1)  # a new transition, a new timestamp (alarm states are stamped on the simulated clock)
    aws.set_alarm("OK")
    aws.set_alarm("ALARM")
    assert handler(_alarm_now(aws, "orders-db-r2"), context())["outcome"] == "refused"  # within cooldown

    assert run("ack", "orders") == 0
    capsys.readouterr()
    assert run("status", "orders", "--json") == 0
    assert '"acknowledged": {"by"' in capsys.readouterr().out
    aws.clock.advance(1)  # a new transition, a new timestamp
    aws.set_alarm("OK")
    aws.set_alarm("ALARM")
    r = handler(_alarm_now(aws, "orders-db-r2"), context())
    assert r["outcome"] == "complete", r["reason"]
    assert aws.state().primary in new_replicas
