"""DnsSyncFunction: an RDS DB instance event (created, deleted, stopped, started, failover,
replication stopped or resumed) -> re-sync the instance's cluster: records, replicas, state."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ..core.errors import InvalidEventError
from ..events import parse_rds_event
from ..observability import logger
from . import runtime


@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        rds_event = parse_rds_event(event)
    except InvalidEventError as exc:
        logger.error(str(exc))  # raised: the invocation lands in the on-failure destination
        raise
    a = runtime.app()
    # Short: the schedule's reconcile repeats the sync within a minute if this one cannot run.
    return runtime.answer(lambda: a.rds_event(rds_event, runtime.deadline(a.clock, context, cap_seconds=60)).as_dict(), "the next reconcile syncs it")
