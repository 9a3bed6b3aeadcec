"""Crashes between steps, concurrent deliveries, waits longer than one run: reconcile finishes."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest

from rds_ha.app.executor import CrashPoint
from rds_ha.handlers.failover import handler
from rds_ha.handlers.reconcile import handler as reconcile_handler

from ..builders import Sandbox, alarm_event, build_cluster, context

# A clean failover of the default cluster performs this many AWS-mutating steps (asserted below).
STEPS = 12


def _assert_failed_over_once(aws: Sandbox, promotes: list[int]) -> None:
    assert promotes[0] == 1, f"PromoteReadReplica called {promotes[0]} times"
    assert aws.writer_targets() == [aws.endpoint("orders-db-r2")]
    assert len(aws.replicas_of("orders-db-r2")) == 2
    assert aws.instance("orders-db-r1") is None
    state = aws.state()
    assert state.primary == "orders-db-r2" and state.workflow is None and "orders-db" in state.fenced
    assert aws.history_kinds().count("failover_completed") == 1


def test_clean_failover_has_the_expected_number_of_steps(aws: Sandbox) -> None:
    build_cluster(aws)
    steps: list[str] = []
    aws.service.deps.executor.after_step = steps.append
    handler(alarm_event("eventbridge", aws.clock.now()), context())
    assert len(steps) == STEPS, steps


@pytest.mark.parametrize("crash_after", range(1, STEPS + 1))
def test_crash_after_any_step_is_finished_by_reconcile_without_a_second_promotion(aws: Sandbox, crash_after: int) -> None:
    build_cluster(aws)
    promotes = aws.count_calls("rds", "PromoteReadReplica")
    aws.crash_after(crash_after, lambda: handler(alarm_event("eventbridge", aws.clock.now()), context()))

    # Before the lease expires, reconcile leaves the cluster alone.
    early = reconcile_handler({}, context())
    assert early["results"][0]["outcome"] == "skipped"
    aws.clock.advance(600)
    reconcile_handler({}, context())

    _assert_failed_over_once(aws, promotes)


def test_redelivered_alarm_after_a_crash_resumes_the_same_failover(aws: Sandbox, monkeypatch: Any) -> None:
    build_cluster(aws)
    promotes = aws.count_calls("rds", "PromoteReadReplica")

    def crash(step: str) -> None:
        if step.startswith("promote"):
            raise CrashPoint(step)

    aws.service.deps.executor.after_step = crash
    event = alarm_event("eventbridge", aws.clock.now())
    with pytest.raises(CrashPoint):
        handler(event, context())
    aws.service.deps.executor.after_step = None
    result = handler(event, context())  # Lambda's retry of the failed asynchronous invocation
    assert "already in progress" in result["reason"]
    _assert_failed_over_once(aws, promotes)


def test_promotion_longer_than_one_run_is_finished_by_reconcile(aws: Sandbox) -> None:
    build_cluster(aws)
    aws.fidelity.promote_seconds = 900  # longer than the run may wait
    aws.fidelity.create_replica_seconds = 1200
    promotes = aws.count_calls("rds", "PromoteReadReplica")

    result = handler(alarm_event("eventbridge", aws.clock.now()), context())
    assert result["outcome"] == "waiting"
    # Until the promotion finishes the writer stays; the orphan r1 has left the reader set already.
    assert aws.writer_targets() == [aws.endpoint("orders-db")]
    assert aws.reader_targets() == [aws.endpoint("orders-db-r2")]
    status = aws.service.status(aws.cfg).as_dict()
    assert "promotion of orders-db-r2 in progress" in status["workflow"]["step"]

    for _ in range(40):  # the schedule: one reconcile a minute
        aws.clock.advance(60)
        reconcile_handler({}, context())
        if aws.state().workflow is None:
            break
    _assert_failed_over_once(aws, promotes)
    took = [h for h in aws.service.history("orders") if h["kind"] == "failover_completed"][0]["details"]["seconds"]
    assert took >= 900 + 1200


def test_twenty_concurrent_deliveries_act_once(aws: Sandbox) -> None:
    build_cluster(aws)
    promotes = aws.count_calls("rds", "PromoteReadReplica")
    writer_changes = aws.count_calls("route53", "ChangeResourceRecordSets")
    event = alarm_event("eventbridge", aws.clock.now())
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda _: handler(event, context()), range(20)))
    outcomes = [r["outcome"] for r in results]
    assert outcomes.count("complete") >= 1
    # One delivery acts; the others see its idempotency record in progress, or its stored result.
    assert set(outcomes) <= {"complete", "duplicate"}, outcomes
    _assert_failed_over_once(aws, promotes)
    # The reader onto the candidate, then the writer: two batches, not forty. (New replicas join the
    # reader set once CloudWatch shows them caught up: a later reconcile.)
    assert writer_changes[0] == 2


def test_two_different_alarms_at_once_fail_over_once(aws: Sandbox) -> None:
    build_cluster(aws, alarms=("orders-primary-down", "orders-primary-unreachable"))
    promotes = aws.count_calls("rds", "PromoteReadReplica")
    now = aws.clock.now()
    events = [alarm_event("eventbridge", now), alarm_event("sns", now + timedelta(seconds=1), alarm="orders-primary-unreachable")]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda e: handler(e, context()), events))
    assert sorted(r["outcome"] for r in results) in (["busy", "complete"], ["complete", "ignored"], ["complete", "complete"]), results
    _assert_failed_over_once(aws, promotes)


def test_alarm_whose_delivery_was_lost_is_acted_on_by_reconcile(aws: Sandbox) -> None:
    build_cluster(aws)  # the alarm is in ALARM, but no event ever reached FailoverFunction
    promotes = aws.count_calls("rds", "PromoteReadReplica")
    result = reconcile_handler({}, context())
    assert result["results"][0]["outcome"] == "complete"
    _assert_failed_over_once(aws, promotes)
    # The same transition is never taken again: not by later reconciles, nor by a late delivery.
    aws.clock.advance(60)
    again = reconcile_handler({}, context())["results"][0]
    assert again["outcome"] == "steady"
    alarm = aws.cw().describe_alarms(AlarmNames=["orders-primary-down"])["MetricAlarms"][0]
    late = handler(alarm_event("eventbridge", alarm["StateUpdatedTimestamp"]), context())
    assert late["outcome"] == "duplicate"
    assert promotes[0] == 1
    assert aws.history_kinds().count("failover_started") == 1


def test_blocked_alarm_is_not_retried_every_minute(aws: Sandbox) -> None:
    build_cluster(aws, {"orders-db-r1": ("us-east-1b", 99.0)})
    handler(alarm_event("eventbridge", aws.cw().describe_alarms(AlarmNames=["orders-primary-down"])["MetricAlarms"][0]["StateUpdatedTimestamp"]), context())
    for _ in range(3):
        aws.clock.advance(60)
        reconcile_handler({}, context())
    assert aws.history_kinds().count("failover_blocked") == 1


def test_alarm_back_to_ok_clears_the_blocked_state(aws: Sandbox) -> None:
    build_cluster(aws, {"orders-db-r1": ("us-east-1b", 99.0)})
    now = aws.clock.now()
    handler(alarm_event("eventbridge", now), context())
    assert aws.state().blocked is not None
    aws.set_alarm("OK")
    handler(alarm_event("eventbridge", now + timedelta(minutes=3), state="OK", previous="ALARM"), context())
    assert aws.state().blocked is None
    assert aws.history_kinds()[0] == "blocked_cleared"


def test_multi_az_primary_is_left_to_rds_then_reconcile_fails_over_if_it_stays_down(aws: Sandbox) -> None:
    build_cluster(aws)
    aws.rds().modify_db_instance(DBInstanceIdentifier="orders-db", MultiAZ=True, ApplyImmediately=True)
    alarm = aws.cw().describe_alarms(AlarmNames=["orders-primary-down"])["MetricAlarms"][0]
    first = handler(alarm_event("eventbridge", alarm["StateUpdatedTimestamp"]), context())
    assert first["outcome"] == "deferred"
    assert aws.promotions() == ["orders-db"]
    aws.clock.advance(60)
    assert reconcile_handler({}, context())["results"][0]["outcome"] == "deferred"
    aws.clock.advance(150)  # past multi_az_grace_seconds and the primary is still down
    for rid in ("orders-db-r1", "orders-db-r2"):
        aws.put_lag(rid, 2.0 if rid.endswith("2") else 12.0, at=alarm["StateUpdatedTimestamp"] - timedelta(seconds=30))
    assert reconcile_handler({}, context())["results"][0]["outcome"] == "complete"
    assert aws.writer_targets() == [aws.endpoint("orders-db-r2")]


def test_aws_error_on_promotion_is_recorded_and_retried_by_reconcile(aws: Sandbox, monkeypatch: Any) -> None:
    from rds_ha.core.errors import AwsError

    build_cluster(aws)
    promotes = aws.count_calls("rds", "PromoteReadReplica")
    real = aws.service.deps.rds.promote
    failures = iter([AwsError("promote orders-db-r2: Throttling: Rate exceeded", code="Throttling", transient=True)])

    def flaky(*args: Any) -> None:
        exc = next(failures, None)
        if exc is not None:
            raise exc
        real(*args)

    monkeypatch.setattr(aws.service.deps.rds, "promote", flaky)
    first = handler(alarm_event("eventbridge", aws.clock.now()), context())
    assert first["outcome"] == "retrying" and "Throttling" in first["error"]
    assert aws.writer_targets() == [aws.endpoint("orders-db")]  # never a writer on a non-primary
    assert "step_failed" in aws.history_kinds()
    aws.clock.advance(60)
    reconcile_handler({}, context())
    _assert_failed_over_once(aws, promotes)


def test_old_primary_coming_back_gets_no_writes_and_no_failback(aws: Sandbox) -> None:
    build_cluster(aws)
    from rds_ha.local.moto_fidelity import set_status

    set_status("orders-db", "failed")
    handler(alarm_event("eventbridge", aws.clock.now()), context())
    assert aws.state().primary == "orders-db-r2"
    set_status("orders-db", "available")  # the old primary comes back, as after an AZ recovers
    aws.set_alarm("OK")
    aws.clock.advance(3600)  # long past the cooldown
    for _ in range(3):
        aws.clock.advance(60)
        reconcile_handler({}, context())
    assert aws.writer_targets() == [aws.endpoint("orders-db-r2")]
    assert aws.endpoint("orders-db") not in aws.reader_targets()
    assert aws.state().primary == "orders-db-r2"
    status = aws.service.status(aws.cfg).as_dict()
    assert "orders-db" not in [r["id"] for r in status["replicas"]]
    old = next(r for r in status["fenced"] if r["id"] == "orders-db")
    assert old["status"] == "available"
    # Its own alarm firing again (it watches the old primary) does not fail anything over.
    aws.set_alarm("ALARM")
    result = handler(alarm_event("eventbridge", aws.clock.now(), instance="orders-db"), context())
    assert result["outcome"] == "ignored" and aws.state().primary == "orders-db-r2"
