"""`rds-ha check`: could the cluster fail over right now, and would it complete? One test per reason, asserted
as an operator reads it (exit code, the sentence); reconcile publishes the same judgement as metrics."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rds_ha.handlers.failover import handler as failover
from rds_ha.handlers.reconcile import handler as reconcile
from rds_ha.local import sandbox

from ..builders import REGION, Sandbox, alarm_event, build_cluster, context
from .test_cli import run


def _check(capsys: Any, *clusters: str) -> tuple[int, list[str], dict[str, Any]]:
    capsys.readouterr()
    code = run("check", *clusters, "--json")
    (line,) = capsys.readouterr().out.splitlines()
    verdict = json.loads(line)
    return code, verdict["reasons"], verdict


def _healthy(aws: Sandbox, **kw: Any) -> None:
    build_cluster(aws, **kw)
    for name in kw.get("alarms", ("orders-primary-down",)):
        aws.set_alarm("OK", name)
    reconcile({}, context())  # the reader records in place: steady


def test_a_healthy_cluster_is_ready(aws: Sandbox, capsys: Any) -> None:
    _healthy(aws)
    code, reasons, verdict = _check(capsys, "orders")
    assert (code, reasons, verdict["eligible_candidates"]) == (0, [], 2)
    capsys.readouterr()
    assert run("check") == 0 and "failover ready: 2 eligible candidate(s)" in capsys.readouterr().out


def test_no_eligible_candidate_gives_each_replicas_verdict_as_the_dry_run_does(aws: Sandbox, capsys: Any) -> None:
    _healthy(aws, replicas={"orders-db-r1": ("us-east-1b", 50.0), "orders-db-r2": ("us-east-1c", 45.0)})
    code, reasons, verdict = _check(capsys, "orders")
    assert code == 3 and verdict["eligible_candidates"] == 0
    assert reasons == ["no replica qualifies for promotion (orders-db-r1: lag 50s > max 30s; orders-db-r2: lag 45s > max 30s)"]
    from rds_ha.local.moto_fidelity import set_status

    set_status("orders-db", "failed")  # the dry run judges candidates once the primary is down
    assert run("failover", "orders", "--dry-run") == 3
    dry = capsys.readouterr().out
    assert all(c["reason"] in dry for c in verdict["candidates"]), dry  # the same sentences


def test_an_untagged_replica_is_named(aws: Sandbox, capsys: Any) -> None:
    _healthy(aws)
    aws.rds().create_db_instance_read_replica(DBInstanceIdentifier="orders-db-r3", SourceDBInstanceIdentifier="orders-db")
    aws.put_lag("orders-db-r3", 1.0)
    code, reasons, _ = _check(capsys, "orders")
    assert code == 3
    assert "orders-db-r3 replicates from orders-db but is not tagged rds-ha:cluster=orders: rds-ha will neither promote nor replace it" in reasons[0]


@pytest.mark.parametrize("how", ["managed password", "backups off"])
def test_a_primary_rds_would_refuse_replicas_of(aws: Sandbox, capsys: Any, how: str) -> None:
    _healthy(aws)
    if how == "managed password":
        aws.rds().modify_db_instance(DBInstanceIdentifier="orders-db", ManageMasterUserPassword=True, ApplyImmediately=True)
        expected = "orders-db's master password is managed by Secrets Manager (ManageMasterUserPassword)"
    else:
        aws.rds().modify_db_instance(DBInstanceIdentifier="orders-db", BackupRetentionPeriod=0, ApplyImmediately=True)
        expected = "orders-db has automated backups off (BackupRetentionPeriod 0)"
    code, reasons, _ = _check(capsys, "orders")
    assert code == 3 and len(reasons) == 1 and reasons[0].startswith("after a failover no redundancy could be rebuilt: ") and expected in reasons[0]


def test_a_replica_on_another_major_version_is_named(aws: Sandbox, capsys: Any) -> None:
    _healthy(aws)
    aws.rds().modify_db_instance(DBInstanceIdentifier="orders-db-r1", EngineVersion="15.8", ApplyImmediately=True)
    code, reasons, _ = _check(capsys, "orders")
    assert code == 3 and reasons == ["orders-db-r1 runs postgres 15.8, orders-db 16.4: RDS replicates within one major version only"]


def test_failover_alarms_that_do_not_watch_the_primary_or_do_not_exist(aws: Sandbox, capsys: Any) -> None:
    _healthy(aws, alarms=("orders-primary-down", "orders-primary-gone"))
    sandbox.put_alarm(aws.clients, "orders-primary-down", "orders-db-r1", "OK")  # re-pointed by hand at a replica
    aws.cw().delete_alarms(AlarmNames=["orders-primary-gone"])
    code, reasons, _ = _check(capsys, "orders")
    assert code == 3
    assert reasons == [
        "failover alarm orders-primary-down watches orders-db-r1, not the primary orders-db: a failure of the primary would go unseen",
        "failover alarm orders-primary-gone does not exist in CloudWatch",
    ]


def test_a_pre_failover_hook_that_does_not_exist(aws: Sandbox, capsys: Any) -> None:
    _healthy(aws, extra="    hooks: {pre_failover: 'arn:aws:lambda:us-east-1:123456789012:function:rds-ha-hook-missing', on_timeout: veto}\n")
    code, reasons, _ = _check(capsys, "orders")
    assert code == 3
    assert reasons == [
        "hooks.pre_failover arn:aws:lambda:us-east-1:123456789012:function:rds-ha-hook-missing does not exist: with on_timeout veto, a failover would be vetoed"
    ]


def test_a_probe_reading_older_than_max_age(aws: Sandbox, capsys: Any) -> None:
    secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds-ha/orders-AbCdEf"
    _healthy(aws, extra=f"    probe: {{secret_arn: '{secret}', max_age_seconds: 30}}\n")
    code, reasons, _ = _check(capsys, "orders")
    assert code == 3 and len(reasons) == 2
    assert reasons[0].startswith("no SQL probe reading of orders-db-r1 within probe.max_age_seconds (30s)")


def test_a_drifted_writer_record(aws: Sandbox, capsys: Any) -> None:
    _healthy(aws)
    aws.r53().change_resource_record_sets(
        HostedZoneId=aws.zone_id,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "UPSERT",
                    "ResourceRecordSet": {
                        "Name": "writer.orders.example.internal",
                        "Type": "CNAME",
                        "TTL": 5,
                        "ResourceRecords": [{"Value": aws.endpoint("orders-db-r1")}],
                    },
                }
            ]
        },
    )
    code, reasons, _ = _check(capsys, "orders")
    assert code == 3 and reasons == ["DNS drifted: writer must point at the primary orders-db (reconcile repairs it)"]


def test_cross_region_replicas_of_an_encrypted_primary_without_a_key(aws: Sandbox, capsys: Any) -> None:
    key = aws.clients.client("kms", REGION).create_key()["KeyMetadata"]["Arn"]
    _healthy(aws, kms_key_id=key)
    from rds_ha.core.config import ClusterConfig

    assert aws.cfg is not None
    data = aws.cfg.model_dump()
    data["replicas"]["cross_region"] = [{"region": "us-west-2", "count": 1}]
    aws.service.apply([ClusterConfig.model_validate(data)], "orders.yaml", "test")
    code, reasons, _ = _check(capsys, "orders")
    assert code == 3 and reasons == ["replicas.cross_region us-west-2 has no kms_key_id: RDS needs a key of us-west-2 for a replica of encrypted orders-db"]


def test_paused_and_in_cooldown(aws: Sandbox, capsys: Any) -> None:
    build_cluster(aws)
    assert failover(alarm_event("eventbridge", aws.clock.now()), context())["outcome"] == "complete"
    aws.set_alarm("OK")
    aws.clock.advance(60)
    reconcile({}, context())  # redundancy rebuilt, orphans gone
    capsys.readouterr()
    assert run("pause", "orders", "--reason", "maintenance") == 0
    capsys.readouterr()
    code, reasons, _ = _check(capsys, "orders")
    assert code == 3
    assert reasons[0].startswith("paused by ") and "rds-ha resume" in reasons[0]
    assert reasons[1].startswith("in cooldown for ") and reasons[1].endswith("a new one waits for a human (rds-ha ack)")
    assert run("resume", "orders") == 0 and run("ack", "orders") == 0
    capsys.readouterr()
    assert [r for r in _check(capsys, "orders")[1] if r.startswith(("paused", "in cooldown"))] == []


def test_reconcile_publishes_failover_ready_and_eligible_candidates(aws: Sandbox, capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    _healthy(aws, replicas={"orders-db-r1": ("us-east-1b", 50.0), "orders-db-r2": ("us-east-1c", 2.0)})
    capsys.readouterr()
    result = reconcile({}, context())["results"][0]
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    published = {m["Name"]: r[m["Name"]] for r in records for d in r["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert published["FailoverReady"] == [1.0] and published["EligibleCandidates"] == [1.0]
    assert result["readiness"] == {"cluster": "orders", "ready": True, "eligible_candidates": 1, "reasons": []}

    aws.put_lag("orders-db-r2", 90.0, at=aws.clock.now())
    aws.clock.advance(30)
    result = reconcile({}, context())["results"][0]
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    published = {m["Name"]: r[m["Name"]] for r in records for d in r["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert published["FailoverReady"] == [0.0] and published["EligibleCandidates"] == [0.0]
    assert result["readiness"]["reasons"][0].startswith("no replica qualifies for promotion")


def test_status_shows_the_readiness(aws: Sandbox, capsys: Any) -> None:
    _healthy(aws, replicas={"orders-db-r1": ("us-east-1b", 50.0), "orders-db-r2": ("us-east-1c", 45.0)})
    assert run("status", "orders") == 0
    shown = capsys.readouterr().out
    assert "failover not ready (0 eligible candidate(s)):" in shown and "no replica qualifies for promotion" in shown


def test_a_down_primary_that_nothing_fails_over_is_never_ready(cli_on_sim_clock: Sandbox, capsys: Any, monkeypatch: Any) -> None:
    """Blocked at the failure (both replicas 99 s behind then); they catch up since, so their latest lag is
    fine: the failover is still blocked, and neither `check` nor FailoverReady may say ready (issue 28)."""
    from datetime import timedelta

    from rds_ha.local.moto_fidelity import set_status

    aws = cli_on_sim_clock
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    build_cluster(aws, {"orders-db-r1": ("us-east-1b", 99.0), "orders-db-r2": ("us-east-1c", 99.0)})
    set_status("orders-db", "failed")
    failure = aws.clock.now()
    assert failover(alarm_event("eventbridge", failure), context())["outcome"] == "blocked"
    aws.clock.advance(180)
    for rid in ("orders-db-r1", "orders-db-r2"):
        aws.put_lag(rid, 1.0, at=aws.clock.now() - timedelta(seconds=10))
    capsys.readouterr()
    result = reconcile({}, context())["results"][0]
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    published = {m["Name"]: r[m["Name"]] for r in records for d in r["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert published["FailoverReady"] == [0.0] and not result["readiness"]["ready"], result
    code, reasons, verdict = _check(capsys, "orders")
    assert code == 3 and not verdict["ready"], verdict
    assert any("orders-db is failed" in r and "no replica qualifies for promotion" in r for r in reasons), reasons


def _west_cloudwatch_down(aws: Sandbox, monkeypatch: Any) -> None:
    """us-west-2's CloudWatch refuses every metric read (that region in trouble), whichever session asks."""
    from moto.cloudwatch.models import CloudWatchBackend
    from moto.core.exceptions import JsonRESTError

    original = CloudWatchBackend.get_metric_data

    def get_metric_data(self: CloudWatchBackend, *args: Any, **kwargs: Any) -> Any:
        if self.region_name == "us-west-2":
            raise JsonRESTError("ServiceUnavailable", "us-west-2 is down in this test")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(CloudWatchBackend, "get_metric_data", get_metric_data)


@pytest.mark.parametrize("allow", [False, True])
def test_a_dr_regions_cloudwatch_unreadable_stays_that_regions_trouble(aws: Sandbox, capsys: Any, monkeypatch: Any, allow: bool) -> None:
    """check exits 0 or 3, never 2, when only a DR region's metrics cannot be read; when the candidate that
    region holds would be needed, the reason names it."""
    from .test_read_capacity import with_cross_region

    _healthy(aws)
    with_cross_region(aws, allow=allow)
    reconcile({}, context())  # the us-west-2 replica
    _west_cloudwatch_down(aws, monkeypatch)

    code, reasons, verdict = _check(capsys, "orders")

    assert code == 0, (code, reasons)
    (west,) = [c for c in verdict["candidates"] if c["instance"].startswith("orders-steady")]
    if allow:  # the candidate there is not judged, and its verdict says why
        assert not west["eligible"] and "us-west-2's CloudWatch could not be read (" in west["reason"], west
    # The only candidate there: not ready, and the reason names the region's trouble.
    aws.put_lag("orders-db-r1", 99.0)
    aws.put_lag("orders-db-r2", 99.0)
    aws.clock.advance(60)
    code, reasons, _ = _check(capsys, "orders")
    assert code == 3
    if allow:
        assert any("us-west-2's CloudWatch could not be read" in r for r in reasons), reasons


def test_check_and_apply_say_beforehand_what_a_fence_would_need(aws: Sandbox, capsys: Any) -> None:
    """An untagged parameter group under switchover.fence (the Lambdas could not lift a fence on it) and a DB
    parameter group quota nearly used: warnings, the cluster still ready."""
    from ..fence_sql import FENCE

    _healthy(aws, extra=FENCE, own_parameter_groups=True)
    rds = aws.rds()
    arn = "arn:aws:rds:us-east-1:123456789012:pg:orders-db-params"
    rds.remove_tags_from_resource(ResourceName=arn, TagKeys=["rds-ha:cluster"])
    aws.fidelity.parameter_group_quota = 4  # 3 used (one per instance)

    code, reasons, verdict = _check(capsys, "orders")

    assert code == 0, reasons
    (untagged, quota) = verdict["warnings"]
    assert "parameter group orders-db-params (the primary's, which switchover.fence freezes) lacks the tag rds-ha:cluster=orders" in untagged
    assert "us-east-1 has 3 of its 4 DB parameter groups: 1 left" in quota
    assert aws.cfg is not None
    notes = aws.service.apply([aws.cfg], "orders.yaml", "test")
    assert sum("warning: parameter group orders-db-params" in n or "warning: us-east-1 has 3 of its 4" in n for n in notes) == 2, notes
    rds.add_tags_to_resource(ResourceName=arn, Tags=[{"Key": "rds-ha:cluster", "Value": "orders"}])
    aws.fidelity.parameter_group_quota = 50
    assert "warnings" not in _check(capsys, "orders")[2]
