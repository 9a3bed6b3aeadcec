"""infra/: the protection stack's alarms are what rds-ha's config and CLI expect."""

from __future__ import annotations

import json
import re
from typing import Any

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
    primary = SAMPLE["Resources"]["Primary"]["Properties"]
    # RDS creates no replica of a source whose password it manages (the fidelity layer refuses it too):
    # the password comes from a secret the stack creates, attached to the instance.
    assert "ManageMasterUserPassword" not in primary
    assert primary["MasterUserPassword"] == {"Fn::Sub": "{{resolve:secretsmanager:${MasterSecret}:SecretString:password}}"}
    assert SAMPLE["Resources"]["MasterSecret"]["Properties"]["GenerateSecretString"]["GenerateStringKey"] == "password"
    assert SAMPLE["Resources"]["MasterSecretAttachment"]["Properties"]["TargetId"] == {"Ref": "Primary"}


def _emf_dimensions(capsys: Any, monkeypatch: Any, name: str) -> set[str]:
    from rds_ha.observability import emit

    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    capsys.readouterr()
    emit(name, "orders", 1)
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    (dims,) = record["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
    return set(dims)


def test_the_not_ready_alarm_and_the_dashboard_read_the_metrics_reconcile_publishes(capsys: Any, monkeypatch: Any) -> None:
    """A CloudWatch metric is found only with all its dimensions: the alarm and the dashboard must name
    exactly the ones rds-ha's EMF records carry (cluster and service)."""
    published = _emf_dimensions(capsys, monkeypatch, "FailoverReady")
    alarm = PROTECTION["Resources"]["FailoverNotReadyAlarm"]["Properties"]
    assert {d["Name"] for d in alarm["Dimensions"]} == published
    assert (alarm["MetricName"], alarm["Namespace"], alarm["Threshold"], alarm["EvaluationPeriods"] * alarm["Period"]) == ("FailoverReady", "rds-ha", 1, 300)
    assert alarm["ComparisonOperator"] == "LessThanThreshold" and alarm["TreatMissingData"] == "breaching"  # no reconcile: not ready either

    body = json.loads(re.sub(r"\$\{[^}]+\}", "x", PROTECTION["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]))
    emf = []
    for widget in body["widgets"]:
        for metric in widget["properties"].get("metrics", []):
            if metric and metric[0] == "rds-ha" and metric[1] != "PrimaryHealthy":  # PrimaryHealthy: the probe's PutMetricData
                emf.append(metric)
    assert {m[1] for m in emf} >= {"FailoverReady", "EligibleCandidates", "FailoverStarted"}
    for metric in emf:
        names = {metric[i] for i in range(2, len(metric) - 1, 2) if isinstance(metric[i], str)}
        assert names == published, metric
