"""What real AWS would refuse or lose where moto does not: each case fails on the main before issue 14.
(The suite-wide authorization check in tests/authz.py evaluates every request these tests make.)"""

from __future__ import annotations

import json

import pytest

from rds_ha.core.config import parse_config
from rds_ha.core.errors import ConfigError
from rds_ha.handlers.failover import handler as failover
from rds_ha.handlers.reconcile import handler as reconcile

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
