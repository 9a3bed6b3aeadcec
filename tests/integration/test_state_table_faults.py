"""The state table (DynamoDB) failing under a failover: throttled reads are retried by botocore; a
table that keeps failing stops the failover before it changes anything in RDS or Route 53 (rds-ha
cannot act safely without its lease and its record), with an error result rather than an exception,
and reconcile acts on the alarm, still in ALARM, once the table is back."""

from __future__ import annotations

import pytest

from rds_ha.handlers.failover import handler
from rds_ha.handlers.reconcile import handler as reconcile_handler

from ..builders import Sandbox, alarm_event, build_cluster, context
from .test_aws_faults import Fault, _settled


@pytest.mark.parametrize(("operation", "code"), [("GetItem", "ProvisionedThroughputExceededException"), ("Query", "ThrottlingException")])
def test_throttled_state_reads_are_retried_and_the_failover_completes(aws: Sandbox, operation: str, code: str) -> None:
    build_cluster(aws)
    promotes = aws.count_calls("rds", "PromoteReadReplica")
    fault = Fault(aws, "dynamodb", operation, code, times=2, retried=True)
    result = handler(alarm_event("eventbridge", aws.clock.now()), context())
    assert fault.injected == 2
    assert result["outcome"] == "complete", result
    _settled(aws, promotes)


@pytest.mark.parametrize(("operation", "code"), [("PutItem", "ProvisionedThroughputExceededException"), ("GetItem", "InternalServerError")])
def test_a_state_table_that_keeps_failing_changes_nothing_and_reconcile_finishes_later(aws: Sandbox, operation: str, code: str) -> None:
    build_cluster(aws)
    promotes = aws.count_calls("rds", "PromoteReadReplica")
    writer = aws.writer_targets()
    fault = Fault(aws, "dynamodb", operation, code, times=10**6)
    result = handler(alarm_event("eventbridge", aws.clock.now()), context())  # no exception escapes
    fault.clear()
    assert fault.injected >= 1
    assert result["outcome"] == "error" and code in result["reason"], result
    # Without its lease and its record rds-ha did nothing: no promotion, the writer untouched.
    assert promotes[0] == 0 and aws.writer_targets() == writer
    for _ in range(3):
        aws.clock.advance(600)
        reconcile_handler({}, context())  # the alarm is still in ALARM and no decision was recorded: acted on now
        if aws.state().workflow is None and aws.state().primary == "orders-db-r2":
            break
    _settled(aws, promotes)
