"""The fidelity layer's RDS Proxy: what RDS refuses and reports that moto does not (each with AWS's words in
rds_ha/local/moto_fidelity.py)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from rds_ha.local import sandbox
from rds_ha.local.moto_fidelity import set_status

from ..builders import Sandbox, build_cluster


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_rds_refuses_what_a_target_group_cannot_hold(aws: Sandbox) -> None:
    build_cluster(aws, proxy=True)
    rds = aws.rds()
    with pytest.raises(ClientError) as second:  # a target group holds exactly one RDS instance
        rds.register_db_proxy_targets(DBProxyName=sandbox.PROXY, TargetGroupName="default", DBInstanceIdentifiers=["orders-db-r1"])
    assert _code(second) == "DBProxyTargetAlreadyRegisteredFault"
    with pytest.raises(ClientError) as unknown:
        rds.deregister_db_proxy_targets(DBProxyName=sandbox.PROXY, TargetGroupName="default", DBInstanceIdentifiers=["orders-db"])
        rds.register_db_proxy_targets(DBProxyName=sandbox.PROXY, TargetGroupName="default", DBInstanceIdentifiers=["no-such-db"])
    assert _code(unknown) == "DBInstanceNotFound"
    with pytest.raises(ClientError) as gone:
        rds.deregister_db_proxy_targets(DBProxyName=sandbox.PROXY, TargetGroupName="default", DBInstanceIdentifiers=["orders-db"])
    assert _code(gone) == "DBProxyTargetNotFoundFault"
    with pytest.raises(ClientError) as group:
        rds.describe_db_proxy_targets(DBProxyName=sandbox.PROXY, TargetGroupName="other")
    assert _code(group) == "DBProxyTargetGroupNotFoundFault"
    with pytest.raises(ClientError) as proxy:
        rds.describe_db_proxy_targets(DBProxyName="no-such-proxy")
    assert _code(proxy) == "DBProxyNotFoundFault"


def test_a_target_is_registering_then_available_and_unavailable_once_its_instance_stops(aws: Sandbox) -> None:
    build_cluster(aws, proxy=True)
    aws.fidelity.proxy_register_seconds = 30
    rds = aws.rds()
    rds.deregister_db_proxy_targets(DBProxyName=sandbox.PROXY, TargetGroupName="default", DBInstanceIdentifiers=["orders-db"])
    rds.register_db_proxy_targets(DBProxyName=sandbox.PROXY, TargetGroupName="default", DBInstanceIdentifiers=["orders-db"])
    assert aws.proxy_targets() == [("orders-db", "REGISTERING")]
    aws.clock.advance(30)
    assert aws.proxy_targets() == [("orders-db", "AVAILABLE")]
    (target,) = rds.describe_db_proxy_targets(DBProxyName=sandbox.PROXY)["Targets"]
    assert target["Endpoint"] == aws.endpoint("orders-db") and target["Role"] == "READ_WRITE"
    set_status("orders-db", "stopped")  # (RDS stops no instance with replicas: as the lab marks a lost instance)
    (target,) = rds.describe_db_proxy_targets(DBProxyName=sandbox.PROXY)["Targets"]
    assert target["TargetHealth"]["State"] == "UNAVAILABLE" and target["TargetHealth"]["Reason"] == "UNREACHABLE"


@pytest.mark.parametrize("status", ["configuring-enhanced-monitoring", "configuring-log-exports", "storage-full", "rebooting"])
def test_rds_registers_an_instance_only_available_modifying_or_backing_up(aws: Sandbox, status: str) -> None:
    build_cluster(aws, proxy=True)
    rds = aws.rds()
    rds.deregister_db_proxy_targets(DBProxyName=sandbox.PROXY, TargetGroupName="default", DBInstanceIdentifiers=["orders-db"])
    set_status("orders-db", status)
    with pytest.raises(ClientError) as refused:
        rds.register_db_proxy_targets(DBProxyName=sandbox.PROXY, TargetGroupName="default", DBInstanceIdentifiers=["orders-db"])
    assert _code(refused) == "InvalidDBInstanceState" and "needs to be in [AVAILABLE, MODIFYING, BACKING_UP]" in str(refused.value)
    set_status("orders-db", "backing-up")
    rds.register_db_proxy_targets(DBProxyName=sandbox.PROXY, TargetGroupName="default", DBInstanceIdentifiers=["orders-db"])
