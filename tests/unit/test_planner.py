"""The planner is pure: hand-built topologies in, plans with reasons out."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from rds_ha.core.actions import ChangeRecords, CompleteWorkflow, CreateReplica, DeleteInstance, Promote, RetargetAlarms
from rds_ha.core.config import SwitchoverConfig
from rds_ha.core.models import ClusterState, Record, WriterCheck
from rds_ha.core.planner import decide_failover, plan_steady, plan_workflow

from .topo import NOW, cluster, inst, request, topo, workflow

# The reader set once the new primary r2's replicas n1 and n2 serve.
NEW_READERS = (Record("r.example", "n1.rds", 5, "n1", 1), Record("r.example", "n2.rds", 5, "n2", 1))


def _promoted_and_rebuilt(old_status: str, cfg: Any = None) -> Any:
    """After a failover's every step: r2 promoted, writer on it, replicas n1 and n2 serving reads."""
    state = ClusterState(cluster="orders", primary="r2", workflow=workflow(promote_issued_at=NOW, orphans=(), verified_at=NOW))
    old = inst("db", status=old_status, tags={"rds-ha:fenced": "x"})
    return topo(old, inst("r2"), inst("n1", "r2"), inst("n2", "r2"), state=state, writer="r2.rds", reader=NEW_READERS, cfg=cfg)


def kinds(plan) -> list[str]:  # type: ignore[no-untyped-def]
    return [type(a).__name__ for a in plan.actions]


def test_least_lagged_eligible_replica_is_chosen_and_others_say_why() -> None:
    t = topo(inst("db"), inst("r1", "db"), inst("r2", "db"), inst("r3", "db"), lag={"r1": 12, "r2": 2, "r3": 40})
    plan = decide_failover(t, request())
    assert plan.outcome == "start" and plan.chosen == "r2"
    reasons = {c.instance: c.reason for c in plan.candidates}
    assert reasons["r3"] == "lag 40s > max 30s"
    assert "r2 is preferred" in reasons["r1"]
    wf = plan.actions[0].workflow  # type: ignore[attr-defined]
    assert (wf.old_primary, wf.new_primary, set(wf.orphans)) == ("db", "r2", {"r1", "r3"})


def test_lagging_replica_is_never_promoted() -> None:
    plan = decide_failover(topo(inst("db"), inst("r1", "db"), lag={"r1": 31}), request())
    assert plan.outcome == "blocked"
    assert "r1: lag 31s > max 30s" in plan.reason
    assert plan.actions == ()


def test_no_lag_data_and_broken_replication_are_not_eligible() -> None:
    plan = decide_failover(topo(inst("db"), inst("r1", "db"), inst("r2", "db"), lag={"r1": None, "r2": -1}), request())
    assert plan.outcome == "blocked"
    assert "r1: no ReplicaLag data in the 120s before the failure" in plan.reason
    assert "r2: replication not active (ReplicaLag -1)" in plan.reason


def test_each_override_lifts_its_own_guard_only_and_is_named() -> None:
    state = ClusterState(cluster="orders", primary="db", last_failover_at=NOW - timedelta(seconds=10))
    t = topo(inst("db", status="failed"), inst("r1", "db"), lag={"r1": 500}, state=state)
    manual = {"automatic": False, "alarm_name": None, "alarm_instance": None}
    # Past the cooldown, the lag guard still holds: no data-loss guard is lifted by someone who only wanted past the cooldown.
    plan = decide_failover(t, request(ignore_cooldown=True, **manual))
    assert plan.outcome == "blocked" and "lag 500s > max 30s" in plan.reason
    plan = decide_failover(t, request(max_lag_seconds=600, **manual))
    assert plan.outcome == "refused" and "cooldown" in plan.reason
    plan = decide_failover(t, request(max_lag_seconds=400, ignore_cooldown=True, **manual))
    assert plan.outcome == "blocked" and "lag 500s > --max-lag 400s" in plan.reason
    plan = decide_failover(t, request(max_lag_seconds=600, ignore_cooldown=True, **manual))
    assert plan.outcome == "start" and plan.chosen == "r1"
    assert "lag 500s <= --max-lag 600s" in plan.candidates[0].reason
    assert "overrides: --ignore-cooldown, --max-lag 600" in plan.reason
    # Unknown lag passes only with --max-lag any.
    unknown = topo(inst("db", status="failed"), inst("r1", "db"), lag={})
    assert decide_failover(unknown, request(max_lag_seconds=10_000, **manual)).outcome == "blocked"
    plan = decide_failover(unknown, request(max_lag_seconds=math.inf, **manual))
    assert plan.outcome == "start" and "lag not judged (--max-lag any)" in plan.reason and "--max-lag any" in plan.reason
    # A healthy primary: only --allow-healthy-primary, and it lifts nothing else.
    healthy = topo(inst("db"), inst("r1", "db"), lag={"r1": 500})
    assert "risks two writers" in decide_failover(healthy, request(max_lag_seconds=math.inf, ignore_cooldown=True, **manual)).reason
    plan = decide_failover(healthy, request(allow_healthy_primary=True, **manual))
    assert plan.outcome == "blocked" and "lag 500s > max 30s" in plan.reason


def test_tie_broken_by_preference_then_id() -> None:
    cfg = cluster(prefer=["us-east-1c"])
    t = topo(inst("db"), inst("r1", "db", az="us-east-1b"), inst("r2", "db", az="us-east-1c"), lag={"r1": 0, "r2": 0}, cfg=cfg)
    assert decide_failover(t, request()).chosen == "r2"
    t = topo(inst("db"), inst("r1", "db", az="us-east-1b"), inst("r2", "db", az="us-east-1c"), lag={"r1": 0, "r2": 0})
    assert decide_failover(t, request()).chosen == "r1"


def test_cooldown_refuses_a_second_automatic_failover() -> None:
    state = ClusterState(cluster="orders", primary="db", last_failover_at=NOW - timedelta(seconds=100))
    plan = decide_failover(topo(inst("db"), inst("r1", "db"), lag={"r1": 1}, state=state), request())
    assert plan.outcome == "refused"
    assert "cooldown: last failover 100s ago" in plan.reason


def test_cooldown_over_allows_failover() -> None:
    state = ClusterState(cluster="orders", primary="db", last_failover_at=NOW - timedelta(seconds=601))
    assert decide_failover(topo(inst("db"), inst("r1", "db"), lag={"r1": 1}, state=state), request()).outcome == "start"


def test_alarm_no_longer_in_alarm_is_ignored() -> None:
    plan = decide_failover(topo(inst("db"), inst("r1", "db"), lag={"r1": 1}, alarm="OK"), request())
    assert plan.outcome == "ignored" and "is OK now" in plan.reason


def test_manual_failover_of_available_primary_needs_force() -> None:
    plan = decide_failover(topo(inst("db"), inst("r1", "db"), lag={"r1": 1}), request(automatic=False, alarm_name=None, alarm_instance=None))
    assert plan.outcome == "refused" and "risks two writers" in plan.reason
    plan = decide_failover(topo(inst("db", status="failed"), inst("r1", "db"), lag={"r1": 1}), request(automatic=False, alarm_name=None, alarm_instance=None))
    assert plan.outcome == "start"


def test_target_must_be_a_replica_of_the_primary() -> None:
    t = topo(inst("db", status="failed"), inst("r1", "db"), inst("x"), lag={"r1": 1})
    assert decide_failover(t, request(target="x")).outcome == "refused"
    plan = decide_failover(topo(inst("db"), inst("r1", "db"), inst("r2", "db"), lag={"r1": 1, "r2": 9}), request(target="r2"))
    assert plan.chosen == "r2"


def test_fenced_never_promote_and_other_region_replicas_are_skipped() -> None:
    t = topo(
        inst("db"),
        inst("r1", "db", tags={"rds-ha:fenced": "x"}),
        inst("r2", "db", tags={"rds-ha:never-promote": "true"}),
        inst("r3", "db", region="us-west-2"),
        lag={"r1": 0, "r2": 0, "r3": 0},
    )
    plan = decide_failover(t, request())
    reasons = {c.instance: c.reason for c in plan.candidates}
    assert plan.outcome == "blocked"
    assert reasons == {"r1": "fenced", "r2": "tagged rds-ha:never-promote", "r3": "in us-west-2, another region (failover.allow_cross_region is off)"}


def test_workflow_promotes_first_then_fences_and_keeps_the_writer() -> None:
    state = ClusterState(cluster="orders", primary="db", workflow=workflow())
    t = topo(
        inst("db", status="failed"),
        inst("r1", "db"),
        inst("r2", "db"),
        state=state,
        reader=(Record("r.example", "r1.rds", 5, "r1", 1), Record("r.example", "r2.rds", 5, "r2", 1)),
    )
    plan = plan_workflow(t)
    assert kinds(plan) == ["Promote", "Fence", "ChangeRecords"]
    dns = plan.actions[2]
    assert isinstance(dns, ChangeRecords) and dns.role == "reader"
    assert [(c.action, c.record.set_identifier) for c in dns.changes] == [("DELETE", "r1")]
    promote = plan.actions[0]
    assert isinstance(promote, Promote) and promote.instance == "r2" and promote.backup_retention == 7


def test_workflow_waits_while_promotion_runs() -> None:
    state = ClusterState(cluster="orders", primary="db", workflow=workflow(promote_issued_at=NOW), fenced=("db",))
    t = topo(
        inst("db", status="failed", tags={"rds-ha:fenced": "x"}),
        inst("r2", "db", status="modifying"),
        state=state,
        reader=(Record("r.example", "r2.rds", 5, "r2", 1),),
    )
    plan = plan_workflow(t)
    assert kinds(plan) == ["Wait"]
    assert "promotion of r2 in progress (status modifying)" in plan.actions[0].reason


def test_after_promotion_writer_moves_and_replicas_are_created() -> None:
    state = ClusterState(cluster="orders", primary="db", workflow=workflow(promote_issued_at=NOW))
    t = topo(
        inst("db", status="failed", az="us-east-1a", tags={"rds-ha:fenced": "x"}),
        inst("r1", "db", az="us-east-1b"),
        inst("r2", None, az="us-east-1c"),
        state=state,
    )
    plan = plan_workflow(t)
    assert kinds(plan) == ["ChangeRecords", "ChangeRecords", "RecordPrimary", "CreateReplica", "CreateReplica"]
    writer = plan.actions[0]
    assert isinstance(writer, ChangeRecords) and writer.role == "writer"
    # A compare-and-swap: the record as read is deleted and the new one created, in one batch.
    assert [(c.action, c.record.value) for c in writer.changes] == [("DELETE", "db.rds"), ("CREATE", "r2.rds")]
    creates = [a for a in plan.actions if isinstance(a, CreateReplica)]
    assert {c.instance for c in creates} == {"orders-abc123-1", "orders-abc123-2"}
    assert {c.az for c in creates} == {"us-east-1b", "us-east-1c"}
    assert all(c.tags["rds-ha:cluster"] == "orders" for c in creates)


def test_orphans_are_deleted_only_once_replacements_are_available() -> None:
    state = ClusterState(cluster="orders", primary="r2", workflow=workflow(promote_issued_at=NOW))
    base = [inst("db", status="failed", tags={"rds-ha:fenced": "x"}), inst("r1", "db"), inst("r2")]
    t = topo(*base, inst("n1", "r2", status="creating"), inst("n2", "r2"), state=state, writer="r2.rds")
    plan = plan_workflow(t)
    assert not any(isinstance(a, DeleteInstance) for a in plan.actions)
    plan = plan_workflow(topo(*base, inst("n1", "r2"), inst("n2", "r2"), state=state, writer="r2.rds", reader=NEW_READERS))
    assert kinds(plan) == ["DeleteInstance"]


def test_workflow_completes_when_every_step_is_verified() -> None:
    plan = plan_workflow(_promoted_and_rebuilt(old_status="failed"))
    assert plan.outcome == "complete"
    assert isinstance(plan.actions[0], CompleteWorkflow)


def test_candidate_gone_aborts_into_blocked() -> None:
    state = ClusterState(cluster="orders", primary="db", workflow=workflow())
    plan = plan_workflow(topo(inst("db", status="failed"), state=state))
    assert plan.outcome == "blocked" and "no longer exists" in plan.reason


def test_stop_old_primary_only_when_nothing_replicates_from_it() -> None:
    assert kinds(plan_workflow(_promoted_and_rebuilt(old_status="available", cfg=cluster(stop_old_primary=True)))) == ["StopInstance"]


def test_steady_state_repairs_a_drifted_writer_and_builds_the_reader_set() -> None:
    t = topo(inst("db"), inst("r1", "db"), inst("r2", "db", status="creating"), writer="elsewhere.rds")
    plan = plan_steady(t)
    writer, reader = plan.actions
    assert isinstance(writer, ChangeRecords) and writer.changes[-1].record.value == "db.rds"
    assert isinstance(reader, ChangeRecords) and [c.record.set_identifier for c in reader.changes] == ["r1"]


def test_reader_falls_back_to_the_primary_when_no_replica_serves() -> None:
    t = topo(inst("db"), inst("r1", "db", status="rebooting"))
    reader = plan_steady(t).actions[0]
    assert isinstance(reader, ChangeRecords) and [c.record.value for c in reader.changes] == ["db.rds"]


def test_multi_az_primary_gets_time_to_fail_over_by_itself() -> None:
    t = topo(inst("db", multi_az=True), inst("r1", "db"), lag={"r1": 1})
    plan = decide_failover(t, request(failure_time=NOW - timedelta(seconds=60)))
    assert plan.outcome == "deferred" and "Multi-AZ" in plan.reason
    assert decide_failover(t, request(failure_time=NOW - timedelta(seconds=181))).outcome == "start"


def test_an_orphan_still_named_by_a_reader_record_is_not_deleted_yet() -> None:
    from rds_ha.core.planner import plan_workflow as plan

    state = ClusterState(cluster="orders", primary="r2", workflow=workflow(promote_issued_at=NOW))
    reader = (*NEW_READERS, Record("r.example", "r1.rds", 5, "r1", 1))  # the change taking r1 out failed
    t = topo(
        inst("db", status="failed", tags={"rds-ha:fenced": "x"}),
        inst("r2"),
        inst("r1", "db"),
        inst("n1", "r2"),
        inst("n2", "r2"),
        state=state,
        writer="r2.rds",
        reader=reader,
    )
    p = plan(t)
    assert not [a for a in p.actions if isinstance(a, DeleteInstance)]
    assert [c.record.set_identifier for a in p.actions if isinstance(a, ChangeRecords) for c in a.changes if c.action == "DELETE"] == ["r1"]


def _moved_not_verified(check: Any, writer: str = "r2.rds", started: Any = NOW) -> Any:
    from dataclasses import replace as dc_replace

    wf = workflow(promote_issued_at=NOW, orphans=(), writer_moved_at=NOW, started_at=started, alarms_moved_at=NOW)
    state = ClusterState(cluster="orders", primary="r2", workflow=wf)
    t = topo(
        inst("db", status="failed", tags={"rds-ha:fenced": "x"}), inst("r2"), inst("n1", "r2"), inst("n2", "r2"), state=state, writer=writer, reader=NEW_READERS
    )
    return dc_replace(t, writer_check=check)


@pytest.mark.parametrize(
    ("check", "waiting"),
    [
        (WriterCheck("PENDING", ("r2.rds",)), "writer change PENDING (Route 53 propagating)"),
        (WriterCheck("INSYNC", ("db.rds",)), "Route 53 answers db.rds for w.example, not r2.rds"),
        (WriterCheck("INSYNC", ()), "Route 53 answers nothing for w.example, not r2.rds"),
        (None, "writer record not checked yet"),
    ],
)
def test_a_failover_is_not_complete_until_route53_answers_the_new_primary(check: Any, waiting: str) -> None:
    plan = plan_workflow(_moved_not_verified(check))
    assert plan.outcome == "waiting" and waiting in plan.reason


def test_verified_writer_is_recorded_then_the_workflow_completes() -> None:
    plan = plan_workflow(_moved_not_verified(WriterCheck("INSYNC", ("r2.rds",))))
    assert kinds(plan) == ["VerifyWriter"] and plan.actions[0].reason == "writer change INSYNC; Route 53 answers r2.rds"
    private = plan_workflow(_moved_not_verified(WriterCheck("INSYNC", None)))
    assert kinds(private) == ["VerifyWriter"] and "private zone" in private.actions[0].reason
    assert plan_workflow(_moved_not_verified(WriterCheck("INSYNC", None), writer="db.rds")).outcome != "complete"


def test_a_failover_not_verified_by_its_deadline_is_aborted() -> None:
    plan = plan_workflow(_moved_not_verified(WriterCheck("PENDING", ()), started=NOW - timedelta(seconds=3601)))
    assert plan.outcome == "blocked" and kinds(plan) == ["AbortWorkflow"]
    assert "not verified within failover.deadline_seconds 3600s" in plan.reason


def test_the_failover_alarms_follow_the_new_primary_once() -> None:
    state = ClusterState(cluster="orders", primary="db", workflow=workflow(promote_issued_at=NOW, alarms_moved_at=None))
    t = topo(inst("db", status="failed", tags={"rds-ha:fenced": "x"}), inst("r1", "db"), inst("r2"), state=state)
    (retarget,) = [a for a in plan_workflow(t).actions if isinstance(a, RetargetAlarms)]
    assert (retarget.alarms, retarget.old, retarget.new) == (("down",), "db", "r2")
    assert retarget.reason == "r2 is the primary: a second failure must be seen"
    done = ClusterState(cluster="orders", primary="db", workflow=workflow(promote_issued_at=NOW, alarms_moved_at=NOW))
    t = topo(inst("db", status="failed", tags={"rds-ha:fenced": "x"}), inst("r1", "db"), inst("r2"), state=done)
    assert not [a for a in plan_workflow(t).actions if isinstance(a, RetargetAlarms)]


def test_a_transition_handled_before_one_record_served_every_alarm_role_stays_handled() -> None:
    """State items written by earlier versions keep the failover alarm's transition in `last_trigger` and
    the capacity alarms' as bare times: read now, both are entries of `handled_alarms`, and a redelivery
    of either is a duplicate."""
    earlier = (
        '{"cluster": "orders", "primary": "db", "version": 7,'
        ' "last_trigger": {"alarm": "down", "at": "2026-11-23T10:00:00Z", "outcome": "blocked"},'
        ' "handled_alarms": {"cpu-high": "2026-11-23T09:00:00Z"}}'
    )
    state = ClusterState.model_validate_json(earlier)
    assert state.handled("cpu-high", NOW - timedelta(hours=1)) is not None
    plan = decide_failover(topo(inst("db", status="failed"), inst("r1", source="db"), lag={"r1": 1.0}, state=state), request())
    assert (plan.outcome, plan.reason) == ("duplicate", "this transition of down was handled already (blocked)")
    again = ClusterState.model_validate_json(state.model_dump_json())  # as the next write stores it
    assert "last_trigger" not in state.model_dump() and again.handled_alarms == state.handled_alarms


# -- a switchover's write fence -----------------------------------------------------------------------


def _fenced(promoted: bool, minutes: float) -> tuple[list[str], str]:
    """A fenced switchover db -> r2, `minutes` after the fence; r2 promoted (standalone) or still a replica."""
    from rds_ha.core.models import FenceView, WriteFence

    cfg = cluster(deadline_seconds=300).model_copy(
        update={
            "switchover": SwitchoverConfig.model_validate(
                {"catch_up_seconds": 60, "fence": {"secret_arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:m"}}
            )
        }
    )
    at = NOW - timedelta(minutes=minutes)
    fence = WriteFence(instance="db", group="db-params", parameter="default_transaction_read_only", previous="0", requested_at=at, position=5.0, sealed_at=at)
    wf = workflow(kind="switchover", started_at=at, fence=fence, promote_issued_at=at if promoted else None)
    state = ClusterState(cluster="orders", primary="db", workflow=wf)
    t = topo(inst("db", parameter_group="db-params"), inst("r2", None if promoted else "db"), state=state, cfg=cfg)
    t = replace(t, fence=FenceView(replayed=1.0))
    plan = plan_workflow(t)
    return [type(a).__name__ for a in plan.actions], plan.reason


def test_a_fence_is_lifted_when_the_target_has_not_replayed_in_time_and_never_once_it_is_promoted() -> None:
    actions, reason = _fenced(promoted=False, minutes=2)
    assert actions == ["LiftFence", "AbortWorkflow"] and "catch_up_seconds (60s)" in reason
    # Past failover.deadline_seconds, unverified, the promoted target not recorded as the primary yet: paged once,
    # never ended (ending it would leave a writer nobody follows), never unfenced.
    actions, reason = _fenced(promoted=True, minutes=10)
    assert actions[0] == "Overdue" and "AbortWorkflow" not in actions and "LiftFence" not in actions, (actions, reason)
    actions, _ = _fenced(promoted=False, minutes=0)  # in time, not replayed yet: wait
    assert actions == ["Wait"]
