"""A cluster on local AWS (moto): a primary, its replicas with ReplicaLag, a hosted zone, alarms.

Shared by the demo and the tests so both exercise the same setup.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ..adapters.aws import AwsClients

REGION = "us-east-1"
ZONE_NAME = "orders.example.internal"
WRITER = "writer.orders.example.internal"


def put_lag(clients: AwsClients, instance_id: str, seconds: float, at: datetime, region: str = REGION) -> None:
    """A ReplicaLag datapoint (moto emits none of its own)."""
    clients.client("cloudwatch", region).put_metric_data(
        Namespace="AWS/RDS",
        MetricData=[
            {
                "MetricName": "ReplicaLag",
                "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": instance_id}],
                "Value": seconds,
                "Unit": "Seconds",
                "Timestamp": at,
            }
        ],
    )


def put_alarm(clients: AwsClients, name: str, instance: str, state: str | None = None, region: str = REGION) -> None:
    """A primary-down alarm on `instance` (moto never evaluates it: `state` sets it by hand)."""
    cw = clients.client("cloudwatch", region)
    cw.put_metric_alarm(
        AlarmName=name,
        Namespace="AWS/RDS",
        MetricName="DatabaseConnections",
        Statistic="Minimum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="LessThanThreshold",
        TreatMissingData="breaching",
        Dimensions=[{"Name": "DBInstanceIdentifier", "Value": instance}],
    )
    if state:
        cw.set_alarm_state(AlarmName=name, StateValue=state, StateReason="set by the local sandbox")


def _own_group(rds: Any, instance: str, engine: str) -> dict[str, str]:
    """A DB parameter group of the instance's own, `<id>-params`, tagged as the cluster's (rds-ha may change only
    tagged groups): CreateDBInstance's argument naming it."""
    family = {"postgres": "postgres16", "mysql": "mysql8.0", "mariadb": "mariadb10.11"}.get(engine, "postgres16")
    tags = [{"Key": "rds-ha:cluster", "Value": "orders"}]
    rds.create_db_parameter_group(DBParameterGroupName=f"{instance}-params", DBParameterGroupFamily=family, Description=f"{instance}'s own", Tags=tags)
    return {"DBParameterGroupName": f"{instance}-params"}


def create_cluster(
    clients: AwsClients,
    now: datetime,
    replicas: dict[str, tuple[str, float | None]],
    *,
    primary: str = "orders-db",
    primary_az: str = "us-east-1a",
    tags: dict[str, dict[str, str]] | None = None,
    alarms: tuple[str, ...] = ("orders-primary-down",),
    alarm_state: str | None = None,
    region: str = REGION,
    engine: str = "postgres",
    kms_key_id: str | None = None,
    own_parameter_groups: bool = False,
) -> str:
    """Create the cluster; replicas are {id: (az, ReplicaLag seconds or None for no data)}. Returns the zone id.
    `kms_key_id`: the primary's storage is encrypted with that key (its replicas inherit it).
    `own_parameter_groups`: each instance gets a DB parameter group of its own, `<id>-params` (what a write fence needs)."""
    rds = clients.client("rds", region)
    member = [{"Key": "rds-ha:cluster", "Value": "orders"}]
    version = {"postgres": "16.4", "mysql": "8.0.39", "mariadb": "10.11.9"}.get(engine, "16.4")

    def group(instance: str) -> dict[str, str]:
        return _own_group(rds, instance, engine) if own_parameter_groups else {}

    rds.create_db_instance(
        DBInstanceIdentifier=primary,
        Engine=engine,
        # moto has no default version for MariaDB (a KeyError): name one, as a real template would.
        EngineVersion=version,
        DBInstanceClass="db.r6g.large",
        AllocatedStorage=100,
        MasterUsername="app",
        MasterUserPassword="local-moto-only-1",
        BackupRetentionPeriod=7,  # noqa: S106 - moto, not a secret
        AvailabilityZone=primary_az,
        Tags=member,
        **({"StorageEncrypted": True, "KmsKeyId": kms_key_id} if kms_key_id else {}),
        **group(primary),
    )
    for rid, (az, lag) in replicas.items():
        extra = [{"Key": k, "Value": v} for k, v in (tags or {}).get(rid, {}).items()]
        rds.create_db_instance_read_replica(DBInstanceIdentifier=rid, SourceDBInstanceIdentifier=primary, AvailabilityZone=az, Tags=member + extra)
        if own_parameter_groups:  # as RDS has it done: a replica takes its source's group; another is associated, then a reboot
            rds.modify_db_instance(DBInstanceIdentifier=rid, ApplyImmediately=True, **group(rid))
            rds.reboot_db_instance(DBInstanceIdentifier=rid)
        if lag is not None:
            put_lag(clients, rid, lag, now - timedelta(seconds=30), region)
    r53 = clients.client("route53", region)
    zone = str(r53.create_hosted_zone(Name=ZONE_NAME, CallerReference=f"rds-ha-{primary}")["HostedZone"]["Id"]).split("/")[-1]
    endpoint = rds.describe_db_instances(DBInstanceIdentifier=primary)["DBInstances"][0]["Endpoint"]["Address"]
    r53.change_resource_record_sets(
        HostedZoneId=zone,
        ChangeBatch={
            "Changes": [{"Action": "UPSERT", "ResourceRecordSet": {"Name": WRITER, "Type": "CNAME", "TTL": 5, "ResourceRecords": [{"Value": endpoint}]}}]
        },
    )
    for alarm in alarms:
        put_alarm(clients, alarm, primary, alarm_state, region)
    return zone


PROXY = "orders-proxy"


def create_proxy(clients: AwsClients, target: str = "orders-db", *, name: str = PROXY, engine_family: str = "POSTGRESQL", region: str = REGION) -> str:
    """An RDS Proxy in front of `target` (its default target group registered with it), in a VPC of its
    own as RDS Proxy needs one. Returns the proxy's ARN."""
    ec2 = clients.client("ec2", region)
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{n}.0/24", AvailabilityZone=f"{region}{az}")["Subnet"]["SubnetId"] for n, az in enumerate("ab")]
    rds = clients.client("rds", region)
    secret = f"arn:aws:secretsmanager:{region}:123456789012:secret:{name}-app"
    proxy = rds.create_db_proxy(
        DBProxyName=name,
        EngineFamily=engine_family,
        Auth=[{"AuthScheme": "SECRETS", "SecretArn": secret, "IAMAuth": "DISABLED"}],
        RoleArn=f"arn:aws:iam::123456789012:role/{name}-secrets",
        VpcSubnetIds=subnets,
        RequireTLS=True,
    )["DBProxy"]
    rds.register_db_proxy_targets(DBProxyName=name, TargetGroupName="default", DBInstanceIdentifiers=[target])
    return str(proxy["DBProxyArn"])


def proxy_targets(clients: AwsClients, name: str = PROXY, region: str = REGION) -> list[tuple[str, str]]:
    """(instance, health state) of each target of the proxy's default target group, as RDS shows them."""
    targets = clients.client("rds", region).describe_db_proxy_targets(DBProxyName=name, TargetGroupName="default")["Targets"]
    return [(t["RdsResourceId"], t["TargetHealth"]["State"]) for t in targets]


FLEET_CLUSTER = """\
  - name: c{n}
    region: us-east-1
    primary: c{n}-db
    replicas: {{min: 2, max: 4}}
    dns: {{zone_id: {zone}, writer: writer.c{n}.example.internal, reader: reader.c{n}.example.internal, ttl: 5}}
    alarms:
      failover: [c{n}-primary-down]
"""


def create_fleet(clients: AwsClients, clusters: int, now: datetime, alarm_state: str = "OK") -> str:
    """`clusters` clusters c0..cN (a primary and two replicas each, tagged, with lag and a primary-down
    alarm) in one hosted zone; returns their config file's text."""
    rds = clients.client("rds", REGION)
    zone = str(clients.client("route53", REGION).create_hosted_zone(Name="example.internal", CallerReference="fleet")["HostedZone"]["Id"]).split("/")[-1]
    text = "clusters:\n"
    for n in range(clusters):
        tag = [{"Key": "rds-ha:cluster", "Value": f"c{n}"}]
        rds.create_db_instance(
            DBInstanceIdentifier=f"c{n}-db",
            Engine="postgres",
            DBInstanceClass="db.t3.micro",
            AllocatedStorage=20,
            MasterUsername="u",
            MasterUserPassword="local-moto-only-1",  # noqa: S106 # nosec B106 - moto, not a secret
            BackupRetentionPeriod=1,
            AvailabilityZone="us-east-1a",
            Tags=tag,
        )
        for replica, az, lag in (("r1", "us-east-1b", 1.0), ("r2", "us-east-1c", 3.0)):
            rds.create_db_instance_read_replica(DBInstanceIdentifier=f"c{n}-db-{replica}", SourceDBInstanceIdentifier=f"c{n}-db", AvailabilityZone=az, Tags=tag)
            put_lag(clients, f"c{n}-db-{replica}", lag, now - timedelta(seconds=30))
        put_alarm(clients, f"c{n}-primary-down", f"c{n}-db", alarm_state)
        text += FLEET_CLUSTER.format(n=n, zone=zone)
    return text
