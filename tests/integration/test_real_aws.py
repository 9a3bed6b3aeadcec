"""What real AWS would refuse or lose where moto alone does not: RDS's refusals (the fidelity layer), apply's
checks, and cases whose assertion is the suite-wide authorization check (tests/authz.py evaluates every
request these tests make: on moto alone the customer-managed-key cases would pass without the KMS grants)."""

from __future__ import annotations

import json

import pytest

from rds_ha.core.config import parse_config
from rds_ha.core.errors import ConfigError
from rds_ha.handlers.failover import handler as failover
from rds_ha.handlers.reconcile import handler as reconcile
from rds_ha.local import sandbox

from ..builders import CONFIG, REGION, Sandbox, alarm_event, build_cluster, context


def test_a_clusters_own_topic_gets_the_page(aws: Sandbox) -> None:
    sns, sqs = aws.clients.client("sns", REGION), aws.clients.client("sqs", REGION)
    topic = sns.create_topic(Name="rds-ha-orders-pages")["TopicArn"]
    queue = sqs.create_queue(QueueName="pages")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    build_cluster(aws, extra=f"    notifications: {{sns_topic_arn: {topic}}}\n")

    assert failover(alarm_event("eventbridge", aws.clock.now()), context())["outcome"] == "complete"

    pages = [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])]
    assert pages and pages[0]["cluster"] == "orders", pages


def test_a_topic_iam_would_not_let_rds_ha_publish_to_is_refused_in_one_line() -> None:
    text = CONFIG.format(min=2, zone="Z1", max_lag=30, cooldown=600, extra_failover="", alarms="orders-primary-down", extra="") + (
        "    notifications: {sns_topic_arn: 'arn:aws:sns:us-east-1:123456789012:oncall'}\n"
    )
    with pytest.raises(ConfigError) as refused:
        parse_config(text, "orders.yaml")
    assert str(refused.value).count("\n") == 0 and "name it rds-ha-*" in str(refused.value), str(refused.value)


def test_a_primary_under_a_customer_managed_key_gets_its_redundancy_rebuilt(aws: Sandbox) -> None:
    """RDS creates a grant on the source's customer managed key with the caller's permissions: the rebuild
    needs kms:CreateGrant and kms:DescribeKey through RDS (checked by the authorization check)."""
    key = aws.clients.client("kms", REGION).create_key(Description="orders storage")["KeyMetadata"]["Arn"]
    build_cluster(aws, kms_key_id=key)

    result = failover(alarm_event("eventbridge", aws.clock.now()), context())
    aws.clock.advance(60)
    reconcile({}, context())

    assert result["outcome"] == "complete", result
    created = [i for i in aws.rds().describe_db_instances()["DBInstances"] if i.get("ReadReplicaSourceDBInstanceIdentifier") == result["chosen"]]
    assert len(created) == 2 and all(i["StorageEncrypted"] for i in created), created


def test_replicas_of_an_encrypted_primary_are_created_by_scale_out_and_by_reconcile(aws: Sandbox) -> None:
    from rds_ha.handlers.scaling import handler as scaling

    from .test_read_capacity import alarm, capacity_cluster, replica_ids

    key = aws.clients.client("kms", REGION).create_key(Description="orders storage")["KeyMetadata"]["Arn"]
    capacity_cluster(aws, kms_key_id=key)
    assert scaling(alarm(aws, "orders-replicas-cpu-high"), context())["outcome"] == "done"
    assert len(replica_ids(aws)) == 3
    aws.rds().delete_db_instance(DBInstanceIdentifier="orders-db-r1", SkipFinalSnapshot=True)
    aws.rds().delete_db_instance(DBInstanceIdentifier="orders-db-r2", SkipFinalSnapshot=True)
    reconcile({}, context())  # replicas.min (2) restored
    assert len(replica_ids(aws)) == 2


def test_wait_seconds_cannot_exceed_what_the_function_timeout_leaves() -> None:
    from rds_ha.core.config import WAIT_SECONDS_MAX
    from rds_ha.handlers.runtime import SAFETY_MARGIN
    from rds_ha.local.template import load_template

    from ..builders import ROOT

    template = load_template(ROOT / "template.yaml")
    timeout = template["Resources"]["FailoverFunction"]["Properties"].get("Timeout", template["Globals"]["Function"]["Timeout"])
    assert timeout - SAFETY_MARGIN.total_seconds() == WAIT_SECONDS_MAX
    text = CONFIG.format(min=2, zone="Z1", max_lag=30, cooldown=600, extra_failover=", wait_seconds: 281", alarms="orders-primary-down", extra="")
    with pytest.raises(ConfigError) as refused:
        parse_config(text, "orders.yaml")
    assert "clusters[0].failover.wait_seconds" in str(refused.value) and "280" in str(refused.value), str(refused.value)


# -- RDS's refusals, and apply telling them beforehand -------------------------------------------------


def _managed_password(aws: Sandbox, instance: str = "orders-db") -> None:
    aws.rds().modify_db_instance(DBInstanceIdentifier=instance, ManageMasterUserPassword=True, ApplyImmediately=True)


def test_rds_refuses_a_replica_of_a_primary_whose_password_secrets_manager_manages(aws: Sandbox) -> None:
    build_cluster(aws)
    _managed_password(aws)
    with pytest.raises(aws.rds().exceptions.ClientError) as refused:
        aws.rds().create_db_instance_read_replica(DBInstanceIdentifier="orders-db-r9", SourceDBInstanceIdentifier="orders-db")
    assert refused.value.response["Error"]["Code"] == "InvalidParameterValue"


def test_apply_warns_about_a_managed_password_primary_and_failover_says_why_no_replica_is_rebuilt(aws: Sandbox) -> None:
    cfg = build_cluster(aws)
    _managed_password(aws, "orders-db-r2")  # the replica a failover promotes manages its password once promoted
    _managed_password(aws)
    notes = aws.service.apply([cfg], "orders.yaml", "test")
    assert any("warning: orders-db's master password is managed by Secrets Manager" in n for n in notes), notes

    result = failover(alarm_event("eventbridge", aws.clock.now()), context())
    assert result["chosen"] == "orders-db-r2" and aws.writer_targets() == [aws.endpoint("orders-db-r2")]
    aws.clock.advance(60)
    steady = reconcile({}, context())["results"][0]
    assert "redundancy cannot be rebuilt: orders-db-r2's master password is managed by Secrets Manager" in json.dumps(steady), steady
    assert aws.replicas_of("orders-db-r2") == []  # nothing asked of RDS that it refuses


def test_rds_refuses_a_sixteenth_replica(aws: Sandbox) -> None:
    build_cluster(aws)
    for i in range(3, 16):
        aws.rds().create_db_instance_read_replica(DBInstanceIdentifier=f"orders-db-r{i}", SourceDBInstanceIdentifier="orders-db")
    with pytest.raises(aws.rds().exceptions.ClientError) as refused:
        aws.rds().create_db_instance_read_replica(DBInstanceIdentifier="orders-db-r16", SourceDBInstanceIdentifier="orders-db")
    assert "15" in refused.value.response["Error"]["Message"]


def _in_a_vpc(aws: Sandbox, region: str) -> str:
    ec2 = aws.clients.client("ec2", region)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{region}{az}")["Subnet"]["SubnetId"] for i, az in enumerate("ab")]
    aws.clients.client("rds", region).create_db_subnet_group(DBSubnetGroupName="orders", DBSubnetGroupDescription="orders", SubnetIds=subnets)
    return "orders"


def test_a_cross_region_replica_of_a_primary_in_a_vpc_needs_a_subnet_group_there(aws: Sandbox) -> None:
    from rds_ha.core.config import ClusterConfig

    from .test_read_capacity import WEST, west_replicas

    aws.zone_id = ""
    group = _in_a_vpc(aws, REGION)
    aws.rds().create_db_instance(
        DBInstanceIdentifier="orders-db",
        Engine="postgres",
        EngineVersion="16.4",
        DBInstanceClass="db.r6g.large",
        AllocatedStorage=100,
        MasterUsername="app",
        MasterUserPassword="local-moto-only-1",  # noqa: S106 - moto
        BackupRetentionPeriod=7,
        DBSubnetGroupName=group,
        Tags=[{"Key": "rds-ha:cluster", "Value": "orders"}],
    )
    with pytest.raises(aws.rds().exceptions.ClientError):  # what RDS does to a request without one (fidelity)
        aws.clients.client("rds", WEST).create_db_instance_read_replica(
            DBInstanceIdentifier="orders-db-w9",
            SourceDBInstanceIdentifier=aws.instance("orders-db")["DBInstanceArn"],
            SourceRegion=REGION,  # type: ignore[index]
        )
    zone = aws.r53().create_hosted_zone(Name="orders.example.internal", CallerReference="vpc")["HostedZone"]["Id"].split("/")[-1]
    sandbox.put_alarm(aws.clients, "orders-primary-down", "orders-db")
    text = CONFIG.format(min=0, zone=zone, max_lag=30, cooldown=600, extra_failover="", alarms="orders-primary-down", extra="")
    data = parse_config(text, "orders.yaml").clusters[0].model_dump()
    data["replicas"]["cross_region"] = [{"region": WEST, "count": 1}]
    with pytest.raises(ConfigError) as refused:
        aws.service.apply([ClusterConfig.model_validate(data)], "orders.yaml", "test")
    assert "replicas.cross_region[0] (us-west-2) needs subnet_group" in str(refused.value), str(refused.value)

    west_group = _in_a_vpc(aws, WEST)
    data["replicas"]["cross_region"] = [{"region": WEST, "count": 1, "subnet_group": west_group, "security_group_ids": ["sg-0123456789abcdef0"]}]
    aws.service.apply([ClusterConfig.model_validate(data)], "orders.yaml", "test")
    reconcile({}, context())
    (replica,) = west_replicas(aws)
    assert replica["DBSubnetGroup"]["DBSubnetGroupName"] == west_group


def test_apply_refuses_a_hook_or_topic_of_another_account(aws: Sandbox) -> None:
    cfg = build_cluster(aws)
    data = cfg.model_dump()
    data["hooks"]["pre_failover"] = "arn:aws:lambda:us-east-1:210987654321:function:rds-ha-hook-check"
    data["notifications"]["sns_topic_arn"] = "arn:aws:sns:us-east-1:210987654321:rds-ha-pages"
    from rds_ha.core.config import ClusterConfig

    with pytest.raises(ConfigError) as refused:
        aws.service.apply([ClusterConfig.model_validate(data)], "orders.yaml", "test")
    text = str(refused.value)
    assert "hooks.pre_failover arn:aws:lambda:us-east-1:210987654321:function:rds-ha-hook-check is in account 210987654321" in text
    assert "notifications.sns_topic_arn" in text and "not rds-ha's account 123456789012" in text


def test_rds_refuses_a_change_to_a_default_parameter_group(aws: Sandbox) -> None:
    """RDS User Guide, "Modifying parameters in a DB parameter group": a default group's values cannot be changed
    (moto answers DBParameterGroupNotFound); the fence never tries (the switchover is refused first)."""
    from botocore.exceptions import ClientError

    build_cluster(aws)
    with pytest.raises(ClientError) as refused:
        aws.rds().modify_db_parameter_group(
            DBParameterGroupName="default.postgres16",
            Parameters=[{"ParameterName": "default_transaction_read_only", "ParameterValue": "1", "ApplyMethod": "immediate"}],
        )
    assert refused.value.response["Error"]["Code"] == "InvalidParameterValue", refused.value.response
