"""The template as CloudFormation sees it after the SAM transform (aws-sam-translator, offline)."""

from __future__ import annotations

import copy
import json
import os
from typing import Any

import pytest
from samtranslator.translator.transform import transform

from rds_ha.local.template import load_template

from ..builders import ROOT


class _NoManagedPolicies:
    def load(self) -> dict[str, str]:
        return {}


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    template = copy.deepcopy(load_template(ROOT / "template.yaml"))
    template["Globals"]["Function"]["CodeUri"] = "s3://placeholder-bucket/rds-ha.zip"  # sam build/package fills it in
    template["Resources"]["ProbeDriversLayer"]["Properties"]["ContentUri"] = "s3://placeholder-bucket/probe-layer.zip"
    params = {"HostedZoneIds": "Z0123456789", "ProbeSubnetIds": "subnet-0a,subnet-0b", "ProbeSecurityGroupIds": "sg-0a"}
    out = transform(template, params, _NoManagedPolicies())
    return dict(out["Resources"])


def _by_type(resources: dict[str, Any], kind: str) -> dict[str, Any]:
    return {k: v for k, v in resources.items() if v["Type"] == kind}


def test_functions_share_runtime_and_environment(resources: dict[str, Any]) -> None:
    for name in ("FailoverFunction", "ReconcileFunction", "ReplicaScalingFunction", "MultiAzFunction", "DnsSyncFunction"):
        props = resources[name]["Properties"]
        assert props["Runtime"] == "python3.12" and props["Architectures"] == ["arm64"]
        env = props["Environment"]["Variables"]
        assert env["RDS_HA_TABLE"] == {"Ref": "StateTable"} and env["RDS_HA_TOPIC_ARN"] == {"Ref": "NotificationTopic"}
        assert "TracingConfig" not in props  # X-Ray would add a policy and ~300 ms of cold start for nothing


def test_roles_get_only_logging_their_managed_policies_and_their_own_extras(resources: dict[str, Any]) -> None:
    basic = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
    managed = {
        "FailoverFunctionRole": ["BasePolicy", "DnsPolicy", "WorkflowPolicy", "CreateReplicasPolicy", "LeasePolicy"],
        "ReconcileFunctionRole": ["BasePolicy", "DnsPolicy", "WorkflowPolicy", "CreateReplicasPolicy", "LeasePolicy"],
        "ReplicaScalingFunctionRole": ["BasePolicy", "DnsPolicy", "CreateReplicasPolicy", "LeasePolicy"],
        "MultiAzFunctionRole": ["BasePolicy", "LeasePolicy"],
        "DnsSyncFunctionRole": ["BasePolicy", "DnsPolicy", "LeasePolicy"],
    }
    for name, policies in managed.items():
        assert resources[name]["Properties"]["ManagedPolicyArns"] == [basic, *({"Ref": p} for p in policies)]

    def inline(role: str) -> set[str]:
        statements = [s for p in resources[role]["Properties"].get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
        return {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}

    # SAM adds sqs:SendMessage on the failure queue for the on-failure destination.
    assert inline("FailoverFunctionRole") == {"dynamodb:UpdateItem", "sqs:SendMessage"}
    # Its RDS changes are the workflow's (WorkflowPolicy), the final snapshot of a retired old primary, and the
    # deletion of the parameter group copies rds-ha made (reconcile alone deletes them).
    groups = {"rds:DeleteDBParameterGroup", "rds:DescribeDBParameterGroups"}
    assert inline("ReconcileFunctionRole") == {"rds:CreateDBSnapshot", "rds:AddTagsToResource", "sqs:SendMessage", *groups}
    assert inline("ReplicaScalingFunctionRole") == {"rds:DeleteDBInstance", "sqs:SendMessage"}
    assert inline("MultiAzFunctionRole") == {"rds:ModifyDBInstance", "sqs:SendMessage"}
    assert inline("DnsSyncFunctionRole") == {"sqs:SendMessage"}


def test_dns_sync_subscribes_to_exactly_the_rds_events_it_acts_on(resources: dict[str, Any]) -> None:
    from rds_ha.events import RDS_EVENT_KINDS

    pattern = resources["DnsSyncFunctionInstanceEvent"]["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.rds"] and pattern["detail-type"] == ["RDS DB Instance Event"]
    assert set(pattern["detail"]["EventID"]) == set(RDS_EVENT_KINDS)


def _statement(raw: dict[str, Any]) -> dict[str, Any]:
    """A statement, or the one a Fn::If [condition, statement, AWS::NoValue] adds when its condition holds."""
    return raw["Fn::If"][1] if "Fn::If" in raw else raw


def test_rds_mutations_require_the_cluster_tag(resources: dict[str, Any]) -> None:
    statements = {
        s["Sid"]: s for p in ("WorkflowPolicy", "CreateReplicasPolicy") for s in map(_statement, resources[p]["Properties"]["PolicyDocument"]["Statement"])
    }
    assert statements["ActOnClusterMembers"]["Condition"] == {"StringLike": {"aws:ResourceTag/rds-ha:cluster": "?*"}}
    assert statements["CreateTaggedReplicas"]["Condition"] == {"StringLike": {"aws:RequestTag/rds-ha:cluster": "?*"}}
    # Tagging: the fence and role tags only on members already tagged; the cluster tag only in a create request's tags.
    assert statements["FenceClusterMembers"]["Condition"] == {
        "StringLike": {"aws:ResourceTag/rds-ha:cluster": "?*"},
        "ForAllValues:StringEquals": {"aws:TagKeys": ["rds-ha:fenced", "rds-ha:role"]},
    }
    assert statements["TagReplicasOnCreate"]["Condition"]["ForAllValues:StringEquals"] == {
        "aws:TagKeys": ["rds-ha:cluster", "rds-ha:role", "rds-ha:created-by"]
    }
    assert statements["TagReplicasOnCreate"]["Condition"]["StringEquals"] == {"aws:RequestTag/rds-ha:role": "replica"}
    # A proxy's targets: only the proxies and target groups the deployer named, and only member instances deregistered.
    assert statements["ProxyFollowsThePrimary"]["Resource"] == {"Ref": "DBProxyArns"}
    assert statements["DeregisterClusterMembersFromProxy"]["Condition"] == {"StringLike": {"aws:ResourceTag/rds-ha:cluster": "?*"}}


def test_record_changes_are_cnames_by_compare_and_swap_only(resources: dict[str, Any]) -> None:
    (statement,) = resources["DnsPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Condition"]["ForAllValues:StringEquals"] == {
        "route53:ChangeResourceRecordSetsRecordTypes": ["CNAME"],
        "route53:ChangeResourceRecordSetsActions": ["CREATE", "DELETE"],
    }
    assert statement["Condition"]["ForAllValues:StringLike"] == {"route53:ChangeResourceRecordSetsNormalizedRecordNames": {"Ref": "RecordNames"}}


def test_failover_is_triggered_by_alarm_state_changes(resources: dict[str, Any]) -> None:
    rules = _by_type(resources, "AWS::Events::Rule")
    alarm_rule = rules["FailoverFunctionAlarmStateChange"]["Properties"]
    assert alarm_rule["EventPattern"]["detail-type"] == ["CloudWatch Alarm State Change"]
    assert alarm_rule["EventPattern"]["detail"]["state"] == {"value": ["ALARM", "OK"]}  # OK clears a blocked state
    assert alarm_rule["Targets"][0]["Arn"] == {"Fn::GetAtt": ["FailoverFunction", "Arn"]}
    permissions = {v["Properties"]["Principal"] for v in _by_type(resources, "AWS::Lambda::Permission").values()}
    assert {"events.amazonaws.com", "lambda.alarms.cloudwatch.amazonaws.com", "sns.amazonaws.com"} <= permissions


def test_reconcile_runs_on_the_schedule_one_at_a_time(resources: dict[str, Any]) -> None:
    rule = resources["ReconcileFunctionSchedule"]["Properties"]
    assert rule["ScheduleExpression"] == {"Ref": "ReconcileSchedule"}
    assert resources["ReconcileFunction"]["Properties"]["ReservedConcurrentExecutions"] == {"Fn::If": ["Reserve", 1, {"Ref": "AWS::NoValue"}]}


def test_failed_async_invocations_land_in_the_queue(resources: dict[str, Any]) -> None:
    for name in (f"{f}FunctionEventInvokeConfig" for f in ("Failover", "Reconcile", "ReplicaScaling", "MultiAz", "DnsSync")):
        dest = resources[name]["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]
        assert dest in ({"Fn::GetAtt": ["FailedInvocationQueue", "Arn"]}, {"Fn::GetAtt": "FailedInvocationQueue.Arn"})


def test_the_probe_runs_in_the_vpc_every_minute_alone_with_the_drivers_layer_no_other_function_gets(resources: dict[str, Any]) -> None:
    probe = resources["HealthProbeFunction"]["Properties"]
    assert probe["VpcConfig"] == {"SubnetIds": {"Ref": "ProbeSubnetIds"}, "SecurityGroupIds": {"Ref": "ProbeSecurityGroupIds"}}
    assert probe["Layers"] == [{"Ref": next(k for k in resources if k.startswith("ProbeDriversLayer"))}]
    assert probe["ReservedConcurrentExecutions"] == {"Fn::If": ["Reserve", 1, {"Ref": "AWS::NoValue"}]} and probe["Timeout"] == 90
    role = resources["HealthProbeFunctionRole"]["Properties"]
    assert "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole" in role["ManagedPolicyArns"]
    rules = [
        r
        for r in _by_type(resources, "AWS::Events::Rule").values()
        if any(t["Arn"] == {"Fn::GetAtt": ["HealthProbeFunction", "Arn"]} for t in r["Properties"]["Targets"])
    ]
    assert [r["Properties"]["ScheduleExpression"] for r in rules] == ["rate(1 minute)"]
    for name, fn in _by_type(resources, "AWS::Lambda::Function").items():
        if name != "HealthProbeFunction":
            assert "Layers" not in fn["Properties"] and "VpcConfig" not in fn["Properties"], name
    # Its metrics only in rds-ha's namespace.
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    put = next(s for s in statements if s["Action"] == ["cloudwatch:PutMetricData"])
    assert put["Condition"] == {"StringEquals": {"cloudwatch:namespace": "rds-ha"}}


def test_the_failover_rule_delivers_ok_transitions_that_clear_a_blocked_state(resources: dict[str, Any]) -> None:
    """EventBridge must deliver the failover alarms' OK transitions too: the primary back clears `blocked`
    (tests/integration/test_recovery.py) only if the event reaches FailoverFunction."""
    sample = json.loads((ROOT / "events" / "alarm-eventbridge-ok.json").read_text())
    rules = {k: v for k, v in resources.items() if v["Type"] == "AWS::Events::Rule" and k.startswith("FailoverFunction")}
    (rule,) = rules.values()
    pattern = rule["Properties"]["EventPattern"]
    assert sample["source"] in pattern["source"] and sample["detail-type"] in pattern["detail-type"]
    assert sample["detail"]["state"]["value"] in pattern["detail"]["state"]["value"]
    # Scaling and Multi-AZ act on transitions into ALARM only.
    for name in ("ReplicaScalingFunctionAlarmStateChange", "MultiAzFunctionAlarmStateChange"):
        assert resources[name]["Properties"]["EventPattern"]["detail"]["state"]["value"] == ["ALARM"]


def test_scheduled_singletons_drop_stale_ticks_and_a_new_account_can_deploy(resources: dict[str, Any]) -> None:
    """Lambda keeps at least 100 executions unreserved (PutFunctionConcurrency): the stack reserves 2 (a quota
    of 102) unless deployed with ReserveConcurrency=false; a throttled scheduled tick is dropped after 60 s
    instead of Lambda's default 6 h of retries."""
    functions = _by_type(resources, "AWS::Lambda::Function")
    reserved = {k: v["Properties"]["ReservedConcurrentExecutions"] for k, v in functions.items() if "ReservedConcurrentExecutions" in v["Properties"]}
    assert reserved == {f: {"Fn::If": ["Reserve", 1, {"Ref": "AWS::NoValue"}]} for f in ("ReconcileFunction", "HealthProbeFunction")}
    template = load_template(ROOT / "template.yaml")
    assert template["Conditions"]["Reserve"] == {"Fn::Equals": [{"Ref": "ReserveConcurrency"}, "true"]}
    assert template["Parameters"]["ReserveConcurrency"]["AllowedValues"] == ["true", "false"]
    configs = {v["Properties"]["FunctionName"]["Ref"]: v["Properties"] for v in _by_type(resources, "AWS::Lambda::EventInvokeConfig").values()}
    for fn in ("ReconcileFunction", "HealthProbeFunction"):
        assert configs[fn]["MaximumEventAgeInSeconds"] == 60 and configs[fn]["MaximumRetryAttempts"] == 0
