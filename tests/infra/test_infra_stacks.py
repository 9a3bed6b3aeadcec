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
        assert props["TreatMissingData"] == "breaching"  # a dead instance publishes nothing


def test_sample_database_members_carry_the_cluster_tag() -> None:
    for logical_id in ("Primary", "Replica1", "Replica2"):
        tags = SAMPLE["Resources"][logical_id]["Properties"]["Tags"]
        assert {"Key": "rds-ha:cluster", "Value": {"Ref": "ClusterName"}} in tags
    assert SAMPLE["Resources"]["Primary"]["Properties"]["BackupRetentionPeriod"] >= 1
    assert SAMPLE["Resources"]["Primary"]["Properties"]["ManageMasterUserPassword"] is True
