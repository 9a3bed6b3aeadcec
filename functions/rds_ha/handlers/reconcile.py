"""ReconcileFunction: on a schedule (or on demand), finish unfinished failovers and repair DNS."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ..observability import logger
from . import runtime


@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    names = runtime.cluster_names(event)
    a = runtime.app()
    # No waiting: the schedule comes back in a minute, and a run must not overlap the next.
    results = a.reconcile(names, runtime.deadline(a.clock, context, cap_seconds=0))
    return {"results": [r.as_dict() for r in results]}
