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


# -- level-triggered: a failover request stands while the primary is down (issue 28) -------------------------


def _tags(aws: Sandbox, instance: str) -> dict[str, str]:
    inst = aws.instance(instance)
    assert inst is not None
    return {t["Key"]: t["Value"] for t in aws.rds().list_tags_for_resource(ResourceName=inst["DBInstanceArn"])["TagList"]}


def _reconcile_for(aws: Sandbox, minutes: int) -> list[dict[str, Any]]:
    results = []
    for _ in range(minutes):
        aws.clock.advance(60)
        results.append(reconcile_handler({}, context())["results"][0])
    return results


def _second_failure_within_the_cooldown(aws: Sandbox) -> dict[str, Any]:
    """A failover to orders-db-r2, then orders-db-r2 fails too, five minutes later: refused by the cooldown."""
    from rds_ha.local.moto_fidelity import set_status

    build_cluster(aws, {"orders-db-r1": ("us-east-1b", 3.0), "orders-db-r2": ("us-east-1c", 2.0)}, min_replicas=2)
    set_status("orders-db", "failed")
    assert handler(alarm_event("eventbridge", aws.clock.now()), context())["outcome"] == "complete"
    aws.clock.advance(300)
    set_status("orders-db-r2", "failed")
    aws.set_alarm("OK")
    aws.set_alarm("ALARM")
    for replica in aws.replicas_of("orders-db-r2"):
        aws.put_lag(replica["DBInstanceIdentifier"], 1.0, at=aws.clock.now() - timedelta(seconds=20))
    refused = handler(alarm_event("eventbridge", aws.clock.now(), instance="orders-db-r2"), context())
    assert refused["outcome"] == "refused" and "cooldown" in refused["reason"], refused
    return refused


def test_a_failover_refused_by_the_cooldown_is_decided_again_once_a_human_acknowledges(aws: Sandbox) -> None:
    _second_failure_within_the_cooldown(aws)
    assert all(r["outcome"] != "complete" for r in _reconcile_for(aws, 2))  # still cooling down: refused, not notified again
    assert aws.history_kinds().count("failover_refused") == 1
    assert aws.cfg is not None
    assert aws.service.ack(aws.cfg, "oncall").outcome == "done"
    assert _reconcile_for(aws, 1)[-1]["outcome"] == "complete"
    primary = aws.state().primary
    assert primary not in ("orders-db", "orders-db-r2") and aws.writer_targets() == [aws.endpoint(primary)]


def test_a_failover_refused_by_the_cooldown_is_decided_again_when_the_cooldown_ends(aws: Sandbox) -> None:
    _second_failure_within_the_cooldown(aws)  # 300 s after the first failover; cooldown_seconds 600
    results = [r["outcome"] for r in _reconcile_for(aws, 6)]
    assert results[:4] == ["refused"] * 4 and "complete" in results[4:], results  # at 600 s: the first reconcile after the cooldown
    assert aws.history_kinds().count("failover_refused") == 1  # the same answer is not recorded or notified again
    assert aws.state().primary not in ("orders-db", "orders-db-r2")


def test_a_failover_blocked_for_want_of_lag_data_is_decided_again_once_the_data_arrives(aws: Sandbox) -> None:
    """CloudWatch publishes ReplicaLag a minute or more late: the decision at the failure saw no datapoint."""
    from rds_ha.local.moto_fidelity import set_status

    build_cluster(aws, {"orders-db-r1": ("us-east-1b", None)}, min_replicas=1)
    set_status("orders-db", "failed")
    failure = aws.clock.now()
    blocked = handler(alarm_event("eventbridge", failure), context())
    assert blocked["outcome"] == "blocked" and "no ReplicaLag data" in blocked["reason"], blocked
    aws.put_lag("orders-db-r1", 1.0, at=failure - timedelta(seconds=40))  # the late datapoint
    assert _reconcile_for(aws, 1)[-1]["outcome"] == "complete"
    assert aws.state().primary == "orders-db-r1" and aws.writer_targets() == [aws.endpoint("orders-db-r1")]


# -- a promotion that fails gives back what its plan took (issue 28) -----------------------------------------


def test_a_failed_promotion_gives_the_healthy_primary_back_its_fence_tag_reader_set_and_proxy(aws: Sandbox) -> None:
    from rds_ha.local.moto_fidelity import set_status

    build_cluster(aws, proxy=True, extra="    switchover: {max_lag_seconds: 30}\n")
    aws.set_alarm("OK")
    assert aws.cfg is not None
    aws.fidelity.promote_seconds = 10**6  # the promotion never completes...
    started = aws.service.switchover(aws.cfg, None, "test", aws.clock.now() + timedelta(seconds=60))
    assert started.outcome == "waiting", started
    set_status("orders-db-r2", "failed")  # ...the target fails instead
    _reconcile_for(aws, 3)
    state = aws.state()
    assert state.workflow is None and state.primary == "orders-db" and "orders-db" not in state.fenced, state
    tags = _tags(aws, "orders-db")
    assert "rds-ha:fenced" not in tags and tags.get("rds-ha:role") == "primary", tags
    assert aws.writer_targets() == [aws.endpoint("orders-db")]
    assert aws.endpoint("orders-db-r2") not in aws.reader_targets() and aws.endpoint("orders-db-r1") in aws.reader_targets()
    assert aws.proxy_targets() == [("orders-db", "AVAILABLE")]
    live = [r for r in aws.replicas_of("orders-db") if r["DBInstanceStatus"] != "failed"]
    assert len(live) == 2  # replicas.min restored beside the failed target
    assert "switchover_aborted" in aws.history_kinds()


def test_a_failed_promotion_in_a_failover_gives_the_primary_back_and_the_next_candidate_is_promoted(aws: Sandbox) -> None:
    from rds_ha.local.moto_fidelity import set_status

    build_cluster(aws)
    set_status("orders-db", "failed")
    promotes = aws.count_calls("rds", "PromoteReadReplica")
    aws.fidelity.promote_seconds = 10**6
    first = handler(alarm_event("eventbridge", aws.clock.now()), context(timeout=60))
    assert first["outcome"] == "waiting", first
    set_status("orders-db-r2", "failed")  # its promotion failed
    aws.fidelity.promote_seconds = 0
    _reconcile_for(aws, 3)
    assert promotes[0] == 2
    state = aws.state()
    assert state.primary == "orders-db-r1" and aws.writer_targets() == [aws.endpoint("orders-db-r1")], state
    assert "failover_aborted" in aws.history_kinds()


@pytest.mark.parametrize("status", ["failed", "incompatible-parameters"])
def test_a_promotion_that_fails_while_the_failover_waits_is_given_back_then_the_next_candidate_promoted(aws: Sandbox, status: str) -> None:
    """The promotion ends `failed` (or `incompatible-parameters`) while FailoverFunction still waits on it: the
    same run gives the old primary back its role, and the next reconcile promotes another candidate."""
    from rds_ha.local.moto_fidelity import set_status

    build_cluster(aws)
    set_status("orders-db", "failed")
    aws.fidelity.promote_seconds = 60
    aws.fidelity.failed_promotions["orders-db-r2"] = status
    first = handler(alarm_event("eventbridge", aws.clock.now()), context())
    assert first["outcome"] == "blocked" and f"its promotion failed: orders-db-r2 is {status}" in first["reason"], first
    state = aws.state()
    assert state.workflow is None and state.primary == "orders-db" and "orders-db" not in state.fenced
    assert "rds-ha:fenced" not in _tags(aws, "orders-db") and state.last_failover_at is None  # the cooldown given back
    assert _reconcile_for(aws, 3)[0]["outcome"] in {"complete", "waiting"}
    assert aws.state().primary == "orders-db-r1" and aws.writer_targets() == [aws.endpoint("orders-db-r1")]


def test_an_alarm_still_in_alarm_about_the_primary_before_a_switchover_fails_nothing_over(aws: Sandbox) -> None:
    """Paused, the alarm goes into ALARM (a blip the pause held back); the operator switches over; the alarm now
    watches the new primary but still shows the old transition until CloudWatch evaluates it again. That
    transition was about the old primary's term: it is no standing request against the new one."""
    build_cluster(aws, extra="    switchover: {max_lag_seconds: 30}\n")  # the alarm is in ALARM, the primary healthy
    assert aws.cfg is not None
    aws.service.pause(aws.cfg, "oncall", "maintenance")
    assert handler(alarm_event("eventbridge", aws.clock.now()), context())["outcome"] == "paused"
    done = aws.service.switchover(aws.cfg, None, "oncall", aws.clock.now() + timedelta(seconds=600))
    assert done.outcome == "complete" and aws.state().primary == "orders-db-r2", done
    alarm = aws.cw().describe_alarms(AlarmNames=["orders-primary-down"])["MetricAlarms"][0]
    assert alarm["StateValue"] == "ALARM" and alarm["Dimensions"][0]["Value"] == "orders-db-r2"  # as CloudWatch leaves it
    for replica in aws.replicas_of("orders-db-r2"):  # its new replicas report ReplicaLag
        aws.put_lag(replica["DBInstanceIdentifier"], 1.0, at=alarm["StateTransitionedTimestamp"] - timedelta(seconds=20))
    aws.service.resume(aws.cfg, "oncall")
    promotes = aws.count_calls("rds", "PromoteReadReplica")
    results = _reconcile_for(aws, 2)
    assert promotes[0] == 0 and aws.state().primary == "orders-db-r2", results
    assert all(r["outcome"] == "steady" for r in results), results


def test_deletion_protection_on_the_new_primary_is_applied_again_until_it_holds(aws: Sandbox) -> None:
    """The new primary's deletion protection (what makes a stale delete of it fail at RDS) is best effort during
    the failover, which never waits for it; reconcile applies it again until RDS has it."""
    from types import SimpleNamespace

    build_cluster(aws)
    rds = aws.clients.client("rds", "us-east-1")

    def refuse(params: Any = None, **_: Any) -> Any:
        if "DeletionProtection" in str((params or {}).get("body")):
            parsed = {"Error": {"Code": "Throttling", "Message": "Rate exceeded"}, "ResponseMetadata": {"HTTPStatusCode": 400}}
            return SimpleNamespace(status_code=400, headers={}, content=b""), parsed
        return None

    rds.meta.events.register("before-call.rds.ModifyDBInstance", refuse, unique_id="refuse-protect")
    handler(alarm_event("eventbridge", aws.clock.now()), context())
    for _ in range(5):
        aws.clock.advance(60)
        reconcile_handler({}, context())
    new = aws.state().primary
    assert new != "orders-db" and aws.state().workflow is None
    assert not aws.instance(new)["DeletionProtection"]  # (every attempt refused so far)
    rds.meta.events.unregister("before-call.rds.ModifyDBInstance", unique_id="refuse-protect")

    aws.clock.advance(60)
    reconcile_handler({}, context())

    assert aws.instance(new)["DeletionProtection"]
    assert "deletion_protection" in aws.history_kinds()
