"""infra/: the protection stack's alarms are what rds-ha's config and CLI expect."""

from __future__ import annotations

from rds_ha.local.template import load_template

from ..builders import ROOT

PROTECTION = load_template(ROOT / "infra" / "protection.yaml")
SAMPLE = load_template(ROOT / "infra" / "sample-database.yaml")


def test_alarms_render_parameters_exist() -> None:
    assert {"ClusterName", "PrimaryInstanceId", "Replica1InstanceId", "Replica2InstanceId", "Replica3InstanceId"} <= set(PROTECTION["Parameters"])


def test_failover_alarms_are_named_and_tagged_for_the_cluster() -> None:
    resources = PROTECTION["Resources"]
    for logical_id, name in (("PrimaryDownAlarm", "rds-ha-${ClusterName}-primary-down"), ("PrimaryUnhealthyAlarm", "rds-ha-${ClusterName}-primary-unhealthy")):
        props = resources[logical_id]["Properties"]
        assert props["AlarmName"] == {"Fn::Sub": name}
        assert {"Key": "rds-ha:cluster", "Value": {"Ref": "ClusterName"}} in props["Tags"]
    # A dead instance publishes nothing: RDS's silence is the failure.
    assert resources["PrimaryDownAlarm"]["Properties"]["TreatMissingData"] == "breaching"


def test_the_probe_alarm_follows_the_primary_and_a_silent_probe_never_fails_over() -> None:
    from rds_ha.adapters.cloudwatch import PROBE_NAMESPACE

    props = PROTECTION["Resources"]["PrimaryUnhealthyAlarm"]["Properties"]
    # The probe's cluster-level series (tests/integration/test_probe.py shows it published): no instance
    # dimension, so the alarm watches whichever instance is the primary after a failover.
    assert (props["Namespace"], props["MetricName"]) == (PROBE_NAMESPACE, "PrimaryHealthy")
    assert props["Dimensions"] == [{"Name": "cluster", "Value": {"Ref": "ClusterName"}}]
    assert props["Period"] == 10  # high resolution
    # The probe withholds its verdict when it reaches nothing (or its credentials fail): no data is no failover.
    assert props["TreatMissingData"] == "notBreaching"


def test_sample_database_members_carry_the_cluster_tag() -> None:
    for logical_id in ("Primary", "Replica1", "Replica2"):
        tags = SAMPLE["Resources"][logical_id]["Properties"]["Tags"]
        assert {"Key": "rds-ha:cluster", "Value": {"Ref": "ClusterName"}} in tags
    assert SAMPLE["Resources"]["Primary"]["Properties"]["BackupRetentionPeriod"] >= 1
    assert SAMPLE["Resources"]["Primary"]["Properties"]["ManageMasterUserPassword"] is True
