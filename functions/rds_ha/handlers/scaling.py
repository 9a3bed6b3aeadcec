"""ReplicaScalingFunction: a replica-load alarm (alarms.scale_out / scale_in) -> one replica more or less."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ..observability import logger
from . import runtime


@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return runtime.handle_capacity_alarms(event, context, roles=("scale_out", "scale_in"))
