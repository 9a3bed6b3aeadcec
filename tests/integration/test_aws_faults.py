"""AWS faults at each call of a failover: retried with backoff, or a recorded state reconcile finishes.

Faults are injected as real AWS error responses (botocore before-send), so botocore's own retry
logic (adaptive mode) sees them exactly as it would see AWS's.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from rds_ha.handlers.failover import handler
from rds_ha.handlers.reconcile import handler as reconcile_handler

from ..builders import REGION, Sandbox, alarm_event, build_cluster, context

# (client, operation) in the failover path, and the error AWS would answer there.
CALLS = [
    ("rds", "DescribeDBInstances", "Throttling"),
    ("rds", "PromoteReadReplica", "InvalidDBInstanceState"),
    ("rds", "AddTagsToResource", "DBInstanceNotFound"),
    ("rds", "CreateDBInstanceReadReplica", "InvalidDBInstanceState"),
    ("rds", "DeleteDBInstance", "InvalidDBInstanceState"),
    ("route53", "ChangeResourceRecordSets", "PriorRequestNotComplete"),
    ("route53", "ListResourceRecordSets", "Throttling"),
    ("cloudwatch", "GetMetricData", "Throttling"),
    ("cloudwatch", "DescribeAlarms", "Throttling"),
]
RETRIED_BY_BOTOCORE = {"Throttling", "PriorRequestNotComplete"}


def _error(protocol: str, code: str) -> AWSResponse:
    """An AWS error response in the wire protocol the client speaks."""
    if protocol in {"json", "smithy-rpc-v2-cbor"}:  # CloudWatch: botocore speaks its JSON protocol here
        body = json.dumps({"__type": code, "message": "injected"}).encode()
        headers = {"content-type": "application/x-amz-json-1.0", "x-amzn-query-error": f"{code};Sender"}
    else:  # query (RDS, SNS) and rest-xml (Route 53)
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>injected</Message></Error><RequestId>x</RequestId></ErrorResponse>".encode()
        )
        headers = {"content-type": "text/xml"}
    return AWSResponse("https://injected", 400, headers, _Raw(body))


class _Raw(io.BytesIO):
    """A raw HTTP body as botocore reads it: streamed, or read (streaming payloads such as Lambda's)."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.data = data

    def stream(self, **_: Any) -> Any:
        yield self.data


class Fault:
    """The next `times` calls of one operation answer AWS error `code`; `clear()` ends the fault.

    `retried=True` answers at the HTTP layer (before-send), so botocore's retries see the error as
    AWS's; moto still executes such a request (it runs every before-send handler), so use it only
    on idempotent calls. Otherwise the call is answered before it is sent (before-call): nothing
    reaches moto, as when AWS refuses a call and retries are exhausted.
    """

    def __init__(self, aws: Sandbox, service: str, operation: str, code: str, times: int, retried: bool = False) -> None:
        # The state table's client has no region of its own (the session's, as in Lambda).
        self.client = aws.clients.client(service, None if service == "dynamodb" else REGION)
        model = self.client.meta.service_model
        self.event = f"before-send.{model.endpoint_prefix}.{operation}" if retried else f"before-call.{model.service_id.hyphenize()}.{operation}"
        self.code, self.times, self.injected, self.retried = code, times, 0, retried
        self.client.meta.events.register_first(self.event, self._answer)

    def _answer(self, **_: Any) -> Any:
        if self.injected >= self.times:
            return None
        self.injected += 1
        if self.retried:
            return _error(self.client.meta.service_model.protocol, self.code)
        parsed = {"Error": {"Code": self.code, "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": 400}}
        return AWSResponse("https://injected", 400, {}, _Raw(b"")), parsed

    def clear(self) -> None:
        self.client.meta.events.unregister(self.event, self._answer)


def _settled(aws: Sandbox, promotes: list[int]) -> None:
    assert promotes[0] == 1
    state = aws.state()
    assert state.workflow is None and state.primary == "orders-db-r2"
    assert aws.writer_targets() == [aws.endpoint("orders-db-r2")]
    assert len(aws.replicas_of("orders-db-r2")) == 2 and aws.instance("orders-db-r1") is None


@pytest.mark.parametrize(("service", "operation", "code"), [c for c in CALLS if c[2] in RETRIED_BY_BOTOCORE])
def test_throttling_is_retried_with_backoff_and_the_failover_completes(aws: Sandbox, service: str, operation: str, code: str) -> None:
    build_cluster(aws)
    promotes = aws.count_calls("rds", "PromoteReadReplica")
    fault = Fault(aws, service, operation, code, times=2, retried=True)
    result = handler(alarm_event("eventbridge", aws.clock.now()), context())
    assert fault.injected == 2
    assert result["outcome"] == "complete", result
    _settled(aws, promotes)


@pytest.mark.parametrize(("service", "operation", "code"), CALLS)
def test_a_call_that_keeps_failing_leaves_a_recorded_state_reconcile_finishes(aws: Sandbox, service: str, operation: str, code: str) -> None:
    build_cluster(aws)
    promotes = aws.count_calls("rds", "PromoteReadReplica")
    endpoints = {i["Endpoint"]["Address"]: i["DBInstanceIdentifier"] for i in aws.rds().describe_db_instances()["DBInstances"]}
    fault = Fault(aws, service, operation, code, times=10**6)
    result = handler(alarm_event("eventbridge", aws.clock.now()), context())  # no exception escapes
    fault.clear()
    assert fault.injected >= 1
    assert result["outcome"] in {"error", "retrying", "complete", "waiting"}, result
    # The writer never points at an instance that is not a standalone primary.
    for target in aws.writer_targets():
        assert not aws.instance(endpoints[target]).get("ReadReplicaSourceDBInstanceIdentifier")
    kinds = aws.history_kinds()
    assert result["outcome"] == "complete" or {"aws_error", "step_failed"} & set(kinds), kinds
    # The fault is over; the schedule's reconcile finishes the failover, promoting exactly once.
    for _ in range(5):
        aws.clock.advance(600)
        reconcile_handler({}, context())
        if aws.state().workflow is None and aws.state().primary == "orders-db-r2":
            break
    _settled(aws, promotes)
