"""A switchover's write fence on moto (switchover.fence), where no server answers SQL: the fence's SQL is a
stand-in that reads the old primary as read-only once its parameter group says so. What a user checks: the
parameter group, the instances, the writer record, the history; and what is left after a crash at any step."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from rds_ha.app.executor import CrashPoint
from rds_ha.core.models import Instance
from rds_ha.handlers.failover import handler as failover
from rds_ha.handlers.reconcile import handler as reconcile

from ..builders import REGION, Sandbox, alarm_event, build_cluster, context
from ..fence_sql import FENCE, FINAL, RECONCILE_PERIOD, StandIn, frozen_for, parameter, use

# A clean fenced switchover of the default cluster performs this many AWS-mutating steps (asserted below): 18 with
# each new replica's own parameter group associated, then applied by a reboot.
STEPS = 18
# README, "Zero-loss switchover": while writes are frozen a run's lease lasts 30 s from each renewal.
FROZEN_LEASE_SECONDS = 30


@pytest.fixture
def fenced(aws: Sandbox) -> Sandbox:
    """Each instance with its own tagged parameter group, the fence configured, the primary healthy."""
    build_cluster(aws, extra=FENCE, own_parameter_groups=True)  # r2 is 2 s behind, r1 12 s
    aws.set_alarm("OK")
    return aws


def switchover(aws: Sandbox, seconds: float = 120) -> Any:
    assert aws.cfg is not None
    return aws.service.switchover(aws.cfg, None, "test", aws.clock.now() + timedelta(seconds=seconds))


def died_with_writes_frozen(aws: Sandbox) -> None:
    """The switchover's process dies right after its parameter group change."""
    use(aws, StandIn(aws))

    def crash(step: str) -> None:
        if step.startswith("freeze writes"):
            raise CrashPoint(step)

    aws.service.deps.executor.after_step = crash
    with pytest.raises(CrashPoint):
        switchover(aws)
    aws.service.deps.executor.after_step = None


def is_replica(aws: Sandbox, instance: str) -> bool:
    found = aws.instance(instance)
    return found is not None and bool(found.get("ReadReplicaSourceDBInstanceIdentifier"))


def test_writes_are_frozen_and_sealed_before_the_promotion_and_the_fence_stays_on_the_old_primary(fenced: Sandbox) -> None:
    aws = fenced
    fence = use(aws, StandIn(aws))
    result = switchover(aws)
    assert result.outcome == "complete", result
    assert aws.state().primary == "orders-db-r2" and aws.writer_targets() == [aws.endpoint("orders-db-r2")]
    kinds = list(reversed(aws.history_kinds()))
    assert kinds.index("writes_frozen") < kinds.index("writes_sealed") < kinds.index("promote_issued") < kinds.index("writer_dns"), kinds
    assert fence.sealed == 1
    assert parameter(aws, "orders-db-params") == "1"  # the old primary stays read-only: it is fenced
    assert parameter(aws, "orders-db-r2-params") is None  # the new primary's own group is untouched


def test_a_target_that_does_not_replay_the_final_position_gets_the_fence_lifted_and_nothing_else_changed(fenced: Sandbox) -> None:
    aws = fenced
    use(aws, StandIn(aws, replayed=lambda: FINAL - 1))
    promotes = aws.count_calls("rds", "PromoteReadReplica")
    result = switchover(aws)
    assert result.outcome == "blocked" and "did not replay orders-db's final write position" in result.reason, result
    assert "switchover.catch_up_seconds (30s)" in result.reason
    assert parameter(aws, "orders-db-params") == "0"  # its value before the fence, put back
    assert promotes[0] == 0 and is_replica(aws, "orders-db-r2")
    assert aws.state().primary == "orders-db" and aws.state().workflow is None
    assert aws.writer_targets() == [aws.endpoint("orders-db")]
    assert {"fence_lifted", "switchover_aborted"} <= set(aws.history_kinds())


def test_a_run_that_cannot_reach_the_database_freezes_nothing(fenced: Sandbox) -> None:
    aws = fenced
    use(aws, StandIn(aws, reachable=False))
    modified = aws.count_calls("rds", "ModifyDBParameterGroup")
    result = switchover(aws)
    assert result.outcome == "blocked" and "cannot reach orders-db" in result.reason and "nothing was changed" in result.reason, result
    assert modified[0] == 0 and parameter(aws, "orders-db-params") is None and aws.state().primary == "orders-db"


def test_a_fence_left_by_a_crashed_run_is_lifted_by_the_scheduled_reconcile(fenced: Sandbox) -> None:
    """The switchover's process dies right after freezing writes; the reconcile Lambda (which reaches no
    database) lifts the fence once switchover.catch_up_seconds have passed since it was requested."""
    aws = fenced
    died_with_writes_frozen(aws)
    assert parameter(aws, "orders-db-params") == "1"
    use(aws, StandIn(aws, reachable=False))  # the Lambda: no SQL reach
    aws.clock.advance(600)  # the dead run's lease expires
    reconcile({}, context())
    assert parameter(aws, "orders-db-params") == "0"
    assert aws.state().workflow is None and aws.state().primary == "orders-db" and is_replica(aws, "orders-db-r2")
    assert aws.writer_targets() == [aws.endpoint("orders-db")]


def test_a_clean_fenced_switchover_has_the_expected_number_of_steps(fenced: Sandbox) -> None:
    steps: list[str] = []
    use(fenced, StandIn(fenced))
    fenced.service.deps.executor.after_step = steps.append
    assert switchover(fenced).outcome == "complete"
    assert len(steps) == STEPS, steps


@pytest.mark.parametrize("crash_after", range(1, STEPS + 1))
def test_a_crash_at_any_step_leaves_one_writable_primary_or_a_finished_switchover(fenced: Sandbox, crash_after: int) -> None:
    """Never the target promoted while the old primary takes writes; once the schedule's reconciles have run
    (as the Lambda: no SQL reach), either the switchover is finished or the old primary is writable again."""
    aws = fenced
    use(aws, StandIn(aws))
    aws.crash_after(crash_after, lambda: switchover(aws))
    promoted = not is_replica(aws, "orders-db-r2")
    assert parameter(aws, "orders-db-params") == "1" or not promoted, "the target is promoted while the old primary takes writes"
    use(aws, StandIn(aws, reachable=False))
    aws.clock.advance(600)  # the dead run's lease expires
    for _ in range(5):
        reconcile({}, context())
        aws.clock.advance(60)
    state = aws.state()
    assert state.workflow is None, state.workflow
    if state.primary == "orders-db":
        assert parameter(aws, "orders-db-params") in (None, "0") and is_replica(aws, "orders-db-r2")
        assert aws.writer_targets() == [aws.endpoint("orders-db")]
    else:
        assert state.primary == "orders-db-r2" and parameter(aws, "orders-db-params") == "1"
        assert aws.writer_targets() == [aws.endpoint("orders-db-r2")]


def test_an_old_primary_without_a_parameter_group_of_its_own_is_refused_before_anything_changes(aws: Sandbox) -> None:
    build_cluster(aws, extra=FENCE)  # every instance on RDS's default group
    aws.set_alarm("OK")
    result = switchover(aws)
    assert result.outcome == "refused" and "needs orders-db's own DB parameter group" in result.reason, result
    assert "default groups" in result.reason and aws.state().workflow is None


def test_a_parameter_group_the_target_shares_is_refused_naming_who_shares_it(aws: Sandbox) -> None:
    rds = aws.rds()
    build_cluster(aws, extra=FENCE, replicas={})
    rds.create_db_parameter_group(DBParameterGroupName="shared", DBParameterGroupFamily="postgres16", Description="one for all")
    rds.modify_db_instance(DBInstanceIdentifier="orders-db", DBParameterGroupName="shared", ApplyImmediately=True)
    for rid in ("orders-db-r1", "orders-db-r2"):  # same-region replicas inherit the source's group (RDS's default)
        rds.create_db_instance_read_replica(
            DBInstanceIdentifier=rid, SourceDBInstanceIdentifier="orders-db", Tags=[{"Key": "rds-ha:cluster", "Value": "orders"}]
        )
        aws.put_lag(rid, 0.0)
    aws.set_alarm("OK")
    result = switchover(aws)
    assert result.outcome == "refused" and "shared is also orders-db-r1, orders-db-r2's" in result.reason, result


def test_replicas_rds_ha_creates_get_their_own_copy_of_the_parameter_group(fenced: Sandbox) -> None:
    aws = fenced
    aws.set_alarm("ALARM")
    assert failover(alarm_event("eventbridge", aws.clock.now()), context())["outcome"] == "complete"
    created = [i for i in aws.rds().describe_db_instances()["DBInstances"] if i.get("ReadReplicaSourceDBInstanceIdentifier") == "orders-db-r2"]
    assert len(created) == 2
    for replica in created:
        group = replica["DBParameterGroups"][0]
        assert group == {"DBParameterGroupName": f"{replica['DBInstanceIdentifier']}-params", "ParameterApplyStatus": "in-sync"}, group
        arn = f"arn:aws:rds:{REGION}:123456789012:pg:{group['DBParameterGroupName']}"
        tags = aws.rds().list_tags_for_resource(ResourceName=arn)["TagList"]
        assert {"Key": "rds-ha:cluster", "Value": "orders"} in tags
    kinds = aws.history_kinds()
    assert kinds.count("parameter_group_associated") == 2 and kinds.count("replica_rebooted") == 2, kinds


def test_a_replica_is_created_as_rds_has_it_done_then_gets_its_own_group_and_serves_only_once_rebooted(fenced: Sandbox) -> None:
    """RDS refuses DBParameterGroupName on a same-region PostgreSQL/MariaDB/MySQL replica (API reference): the replica
    is created with its source's group, its copy associated, and it serves reads only after the reboot that applies it."""
    aws = fenced
    rds = aws.rds()
    with pytest.raises(rds.exceptions.ClientError, match="InvalidParameterCombination"):  # what RDS answers
        rds.create_db_instance_read_replica(DBInstanceIdentifier="orders-x", SourceDBInstanceIdentifier="orders-db", DBParameterGroupName="orders-db-params")
    aws.fidelity.reboot_seconds = 120
    aws.set_alarm("ALARM")
    from rds_ha.local.moto_fidelity import set_status

    set_status("orders-db", "failed")
    failover(alarm_event("eventbridge", aws.clock.now()), context(timeout=30))
    reconcile({}, context())  # the replicas are available: their own groups associated, the reboots issued
    created = sorted(i["DBInstanceIdentifier"] for i in aws.replicas_of("orders-db-r2"))
    assert len(created) == 2
    for rid in created:
        assert aws.instance(rid)["DBInstanceStatus"] == "rebooting"  # type: ignore[index]
        assert aws.endpoint(rid) not in aws.reader_targets()  # its own group is not in effect: it does not serve
    aws.clock.advance(180)
    for rid in created:
        aws.put_lag(rid, 0.5)
    reconcile({}, context())
    for rid in created:
        assert aws.instance(rid)["DBParameterGroups"] == [{"DBParameterGroupName": f"{rid}-params", "ParameterApplyStatus": "in-sync"}]  # type: ignore[index]
        assert aws.endpoint(rid) in aws.reader_targets()


def test_a_primary_that_dies_under_a_stranded_fence_is_failed_over_at_once(fenced: Sandbox) -> None:
    """The switchover's process died with writes frozen; then the primary fails: the failover alarm's
    delivery lifts the fence and ends the switchover, and the failover follows at the next reconcile."""
    from rds_ha.local.moto_fidelity import set_status

    aws = fenced
    died_with_writes_frozen(aws)
    use(aws, StandIn(aws, reachable=False))
    aws.clock.advance(20)  # within switchover.catch_up_seconds (30) of the fence
    set_status("orders-db", "failed")
    aws.set_alarm("ALARM")
    event = alarm_event("eventbridge", aws.clock.now())
    first = failover(event, context())
    assert first["outcome"] == "blocked" and "orders-db is failed: the switchover ends" in first["reason"], first
    assert parameter(aws, "orders-db-params") == "0" and aws.state().workflow is None
    reconcile({}, context())  # the alarm is still in ALARM and its transition not decided on: the failover now
    assert aws.state().primary == "orders-db-r2" and aws.writer_targets() == [aws.endpoint("orders-db-r2")]


def test_a_replica_added_by_scale_out_gets_its_own_parameter_group(aws: Sandbox) -> None:
    from rds_ha.handlers.scaling import handler as scaling

    from .test_read_capacity import alarm, capacity_cluster

    capacity_cluster(aws, extra=FENCE, own_parameter_groups=True)
    assert scaling(alarm(aws, "orders-replicas-cpu-high"), context())["outcome"] == "done"
    reconcile({}, context())  # the steady plan gives it its own group...
    aws.clock.advance(60)
    reconcile({}, context())  # ...and, once the association is done, the reboot that applies it
    added = [i for i in aws.replicas_of("orders-db") if i["DBInstanceIdentifier"] not in ("orders-db-r1", "orders-db-r2")]
    assert len(added) == 1
    assert added[0]["DBParameterGroups"] == [{"DBParameterGroupName": f"{added[0]['DBInstanceIdentifier']}-params", "ParameterApplyStatus": "in-sync"}]


def test_the_dry_run_states_the_fence_first(fenced: Sandbox) -> None:
    aws = fenced
    assert aws.cfg is not None
    result = aws.service.switchover(aws.cfg, None, "test", aws.clock.now(), dry_run=True)
    assert result.outcome == "start", result
    assert result.steps[0].startswith("freeze writes on orders-db: default_transaction_read_only=1 in its DB parameter group orders-db-params")
    assert "replayed that position" in result.steps[2] and result.steps[3].startswith("promote orders-db-r2")
    assert aws.state().workflow is None and parameter(aws, "orders-db-params") is None  # nothing changed


def test_a_function_deployed_without_database_reach_never_freezes_writes(fenced: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """template.yaml sets RDS_HA_FENCE_SQL=0 for every function: a Lambda driving a fenced switchover (a
    failover alarm's delivery resuming it, reconcile) refuses to fence instead of logging in."""
    from rds_ha.app import App, Settings
    from rds_ha.local.template import load_template

    from ..builders import ROOT

    env = load_template(ROOT / "template.yaml")["Globals"]["Function"]["Environment"]["Variables"]
    monkeypatch.setenv("RDS_HA_FENCE_SQL", env["RDS_HA_FENCE_SQL"])
    assert fenced.cfg is not None
    lambda_app = App(fenced.clients, Settings.from_env(), clock=fenced.clock)
    modified = fenced.count_calls("rds", "ModifyDBParameterGroup")
    result = lambda_app.switchover(fenced.cfg, None, "test", fenced.clock.now() + timedelta(seconds=60))
    assert result.outcome == "blocked" and "RDS_HA_FENCE_SQL=0" in result.reason and "nothing was changed" in result.reason, result
    assert modified[0] == 0 and parameter(fenced, "orders-db-params") is None


# -- an accepted promotion is a fact; a fence undone by someone else is noticed (issue 28) ----------------------


def test_a_run_killed_right_after_rds_accepted_the_promotion_never_gives_the_old_primary_its_writes_back(fenced: Sandbox) -> None:
    """SIGKILL (or a failed state write) between RDS accepting PromoteReadReplica and the run recording it: RDS
    still shows the target as a replica while it promotes. The fence must hold, and the switchover finish."""
    aws = fenced
    use(aws, StandIn(aws))
    aws.fidelity.promote_seconds = 300  # RDS shows a promoting replica for minutes
    real = aws.service.deps.rds.promote

    def accepted_then_killed(*args: Any) -> None:
        real(*args)
        raise CrashPoint("killed right after RDS accepted PromoteReadReplica")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(aws.service.deps.rds, "promote", accepted_then_killed)
        patch.setattr(aws.service.deps.table, "release_lease", lambda *a, **k: None)
        with pytest.raises(CrashPoint):
            switchover(aws)
    use(aws, StandIn(aws, reachable=False))  # the scheduled reconcile: no SQL reach
    for _ in range(12):
        aws.clock.advance(60)
        reconcile({}, context())
        promoted = not is_replica(aws, "orders-db-r2")
        assert parameter(aws, "orders-db-params") == "1", "the old primary takes writes again while the target promotes or is promoted"
    assert promoted and aws.state().primary == "orders-db-r2" and aws.state().workflow is None
    assert aws.writer_targets() == [aws.endpoint("orders-db-r2")]


def test_a_fence_undone_by_someone_else_after_the_seal_stops_the_promotion(fenced: Sandbox) -> None:
    """A Terraform re-apply puts the parameter back between the seal and the promotion: the old primary takes
    writes again, so the target must not be promoted."""
    aws = fenced
    stand_in = use(aws, StandIn(aws))
    sealed = stand_in.seal

    def seal_then_undone(instance: Instance) -> float:
        position = sealed(instance)
        aws.rds().modify_db_parameter_group(
            DBParameterGroupName="orders-db-params",
            Parameters=[{"ParameterName": "default_transaction_read_only", "ParameterValue": "0", "ApplyMethod": "immediate"}],
        )
        return position

    stand_in.seal = seal_then_undone  # type: ignore[method-assign]
    promotes = aws.count_calls("rds", "PromoteReadReplica")
    result = switchover(aws)
    assert promotes[0] == 0 and is_replica(aws, "orders-db-r2"), "the target was promoted while the old primary takes writes"
    assert result.outcome == "blocked" and "undone" in result.reason, result
    assert aws.state().primary == "orders-db" and aws.state().workflow is None
    assert aws.writer_targets() == [aws.endpoint("orders-db")]


@pytest.mark.parametrize("dies_after", [0, 12, 29])
@pytest.mark.parametrize("phase", [1, 31, 59])
def test_a_run_killed_with_writes_frozen_keeps_them_frozen_no_longer_than_the_documented_bound(fenced: Sandbox, dies_after: int, phase: int) -> None:
    """catch_up_seconds 30; the switchover's process is killed (-9: no lease released) `dies_after` seconds after
    the fence; reconcile runs every minute, first `phase` seconds after the fence (issue 28). The bound
    (README, "Zero-loss switchover"): max(catch_up_seconds, FROZEN_LEASE_SECONDS after the run died) + one
    reconcile period, and 1 s for the lease's whole-second expiry."""
    assert fenced.cfg is not None
    catch_up = fenced.cfg.switchover.catch_up_seconds
    frozen = frozen_for(fenced, lambda: switchover(fenced), dies_after, phase)
    bound = max(catch_up, dies_after + FROZEN_LEASE_SECONDS) + RECONCILE_PERIOD + 1
    assert frozen <= bound, f"writes frozen {frozen:.0f}s, the documented bound is {bound}s"


def test_a_fence_undone_while_the_target_promotes_is_set_again_before_the_writer_moves(fenced: Sandbox) -> None:
    """The promotion is issued (no way back), then someone puts the parameter back: the old primary would take
    writes beside the new one, so the run freezes it again, and keeps it frozen once the switchover is done."""
    aws = fenced
    use(aws, StandIn(aws))
    aws.fidelity.promote_seconds = 120
    rds = aws.service.deps.rds
    real = rds.promote

    def promoted_then_undone(*args: Any) -> None:
        real(*args)
        aws.rds().modify_db_parameter_group(
            DBParameterGroupName="orders-db-params",
            Parameters=[{"ParameterName": "default_transaction_read_only", "ParameterValue": "0", "ApplyMethod": "immediate"}],
        )

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rds, "promote", promoted_then_undone)
        result = switchover(aws, seconds=600)
    assert result.outcome == "complete", result
    assert parameter(aws, "orders-db-params") == "1"
    frozen = [h for h in aws.service.history(aws.cfg.name) if h["kind"] == "writes_frozen"] if aws.cfg else []
    assert len(frozen) == 2 and "again" in frozen[0]["message"], [h["message"] for h in frozen]
    kinds = list(reversed(aws.history_kinds()))
    assert kinds.index("promote_issued") < len(kinds) - 1 - list(reversed(kinds)).index("writes_frozen") < kinds.index("writer_dns"), kinds


def _groups(aws: Sandbox) -> set[str]:
    pages = aws.rds().get_paginator("describe_db_parameter_groups").paginate()
    return {g["DBParameterGroupName"] for page in pages for g in page["DBParameterGroups"] if not g["DBParameterGroupName"].startswith("default.")}


def test_the_parameter_group_rds_ha_made_is_deleted_with_its_replica(aws: Sandbox) -> None:
    """RDS's default quota is 50 DB parameter groups per region: the copy a replica got goes when the replica goes."""
    from rds_ha.handlers.scaling import handler as scaling

    from .test_read_capacity import alarm, capacity_cluster

    capacity_cluster(aws, extra=FENCE, own_parameter_groups=True)
    before = _groups(aws)
    assert scaling(alarm(aws, "orders-replicas-cpu-high"), context())["outcome"] == "done"
    for _ in range(2):  # its own group associated, then the reboot
        reconcile({}, context())
        aws.clock.advance(60)
    (added,) = _groups(aws) - before
    rid = added.removesuffix("-params")
    assert aws.instance(rid)["DBParameterGroups"][0]["DBParameterGroupName"] == added  # type: ignore[index]
    aws.clock.advance(900)  # past the scale-out cooldown
    for replica in ("orders-db-r1", "orders-db-r2"):
        aws.put_lag(replica, 0.5)
    aws.put_lag(rid, 20.0)  # the most lagging: scale-in removes it
    assert scaling(alarm(aws, "orders-replicas-cpu-low"), context())["outcome"] == "done"
    assert aws.instance(rid) is None
    reconcile({}, context())

    assert _groups(aws) == before, _groups(aws)  # (the groups the operator made stay)
    assert "parameter_group_deleted" in aws.history_kinds()
    assert aws.state().own_groups == {}


def test_a_group_still_in_use_is_never_deleted(aws: Sandbox) -> None:
    """RDS refuses to delete a DB parameter group an instance uses; a group recorded for an instance that is no
    member (outside the cluster's look) is re-read before the call: it exists, so its group stays, no longer
    rds-ha's to clean."""
    build_cluster(aws, extra=FENCE, own_parameter_groups=True)
    aws.set_alarm("OK")
    rds = aws.rds()
    with pytest.raises(rds.exceptions.ClientError, match="InvalidDBParameterGroupState"):
        rds.delete_db_parameter_group(DBParameterGroupName="orders-db-r1-params")
    rds.create_db_parameter_group(DBParameterGroupName="orders-x-params", DBParameterGroupFamily="postgres16", Description="x")
    rds.create_db_instance(
        DBInstanceIdentifier="orders-x", DBInstanceClass="db.t3.micro", Engine="postgres", DBParameterGroupName="orders-x-params", AllocatedStorage=20
    )
    state = aws.state()
    aws.service.deps.table.put_state(state.model_copy(update={"own_groups": {"orders-x-params": REGION}}))

    reconcile({}, context())

    assert "orders-x-params" in _groups(aws) and aws.state().own_groups == {}
    assert "parameter_group_kept" in aws.history_kinds()


def test_rds_refuses_a_parameter_group_past_the_quota(aws: Sandbox) -> None:
    rds = aws.rds()
    aws.fidelity.parameter_group_quota = 2
    for name in ("one", "two"):
        rds.create_db_parameter_group(DBParameterGroupName=name, DBParameterGroupFamily="postgres16", Description=name)
    with pytest.raises(rds.exceptions.ClientError, match="DBParameterGroupQuotaExceeded"):
        rds.copy_db_parameter_group(SourceDBParameterGroupIdentifier="one", TargetDBParameterGroupIdentifier="three", TargetDBParameterGroupDescription="3")
    quotas = {q["AccountQuotaName"]: q for q in rds.describe_account_attributes()["AccountQuotas"]}
    assert quotas["DBParameterGroups"]["Used"] == 2 and quotas["DBParameterGroups"]["Max"] == 2


def test_an_unplanned_failover_freezes_the_old_primarys_writes_after_its_promotion(fenced: Sandbox) -> None:
    """A primary-down alarm on a primary that is in fact alive (a metric gap): the failover also freezes the old
    primary through its own group, issued after the promotion (never before it), so it stops acknowledging writes
    the promoted replica will never have. The old primary stays frozen: it is fenced."""
    aws = fenced
    aws.set_alarm("ALARM")
    assert failover(alarm_event("eventbridge", aws.clock.now()), context())["outcome"] == "complete"
    assert parameter(aws, "orders-db-params") == "1"
    kinds = aws.history_kinds()
    assert kinds.index("promote_issued") > kinds.index("writes_frozen"), kinds  # (newest first)
    assert aws.state().primary == "orders-db-r2"


def test_an_unplanned_failover_whose_promotion_fails_gives_the_old_primary_its_writes_back(fenced: Sandbox) -> None:
    aws = fenced
    aws.fidelity.failed_promotions["orders-db-r2"] = "failed"
    aws.fidelity.promote_seconds = 30
    aws.set_alarm("ALARM")
    failover(alarm_event("eventbridge", aws.clock.now()), context(timeout=20))
    assert parameter(aws, "orders-db-params") == "1"  # frozen alongside the promotion
    aws.set_alarm("OK")  # (the metric is back: no second failover follows the give-back)
    for _ in range(3):
        aws.clock.advance(60)
        reconcile({}, context())
    state = aws.state()
    assert state.primary == "orders-db" and state.workflow is None, state
    assert parameter(aws, "orders-db-params") == "0"  # its value before the freeze, put back


def test_a_copy_recorded_but_never_made_is_forgotten(aws: Sandbox) -> None:
    """A run that died between recording a copy and making it: the group is looked up before the delete (IAM would
    answer AccessDenied, not NotFound, for a delete of a group whose tags it cannot see) and the record dropped."""
    build_cluster(aws, extra=FENCE, own_parameter_groups=True)
    aws.set_alarm("OK")
    state = aws.state()
    aws.service.deps.table.put_state(state.model_copy(update={"own_groups": {"orders-gone-1-params": REGION}}))
    deletes: list[Any] = []
    aws.clients.client("rds", REGION).meta.events.register("before-call.rds.DeleteDBParameterGroup", lambda **kw: deletes.append(kw))
    reconcile({}, context())
    assert aws.state().own_groups == {} and deletes == []  # not even attempted
    kept = [h for h in aws.service.history("orders") if h["kind"] == "parameter_group_kept"]
    assert kept and "was deleted already" in kept[0]["message"], kept


def _outsider_on(aws: Sandbox, group: str) -> None:
    """An instance of the region that is no member of the cluster, on the primary's parameter group."""
    aws.rds().create_db_instance(
        DBInstanceIdentifier="billing-db", DBInstanceClass="db.t3.micro", Engine="postgres", DBParameterGroupName=group, AllocatedStorage=20
    )


def test_a_fence_on_a_group_another_instance_of_the_region_uses_is_refused(fenced: Sandbox) -> None:
    aws = fenced
    use(aws, StandIn(aws))
    _outsider_on(aws, "orders-db-params")
    result = switchover(aws)
    assert result.outcome == "refused" and "orders-db-params is also billing-db's" in result.reason, result
    assert parameter(aws, "orders-db-params") is None and aws.state().primary == "orders-db"


def test_an_unplanned_freeze_never_touches_a_group_another_instance_uses(fenced: Sandbox) -> None:
    aws = fenced
    _outsider_on(aws, "orders-db-params")
    aws.set_alarm("ALARM")
    assert failover(alarm_event("eventbridge", aws.clock.now()), context())["outcome"] == "complete"
    assert parameter(aws, "orders-db-params") is None  # billing-db keeps taking writes
    failed = [h for h in aws.service.history("orders") if h["kind"] == "step_failed" and "also billing-db's" in h["message"]]
    assert len(failed) == 1, failed  # once, not at every look
