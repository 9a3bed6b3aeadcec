"""FailoverFunction: a primary-down alarm (EventBridge, SNS or direct action) -> failover."""

from __future__ import annotations

import threading
from typing import Any

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError, IdempotencyPersistenceLayerError
from aws_lambda_powertools.utilities.typing import LambdaContext

from ..core.errors import InvalidEventError, LeaseBusyError
from ..events import AlarmTrigger, parse_alarm_event
from ..observability import logger
from . import runtime

_config = IdempotencyConfig(expires_after_seconds=3600)
_process: Any = None
_lock = threading.Lock()


def _build() -> Any:
    svc = runtime.service()
    persistence = DynamoDBPersistenceLayer(
        table_name=svc.settings.table,
        key_attr="pk",
        sort_key_attr="sk",
        static_pk_value="idempotency#FailoverFunction",
        boto3_client=svc.clients.client("dynamodb"),
    )

    def process(key: dict[str, str], trigger: AlarmTrigger, context: Any) -> dict[str, Any]:
        cfg = svc.cluster_for_alarm(trigger.alarm_name)
        cap = cfg.failover.wait_seconds if cfg else None
        return svc.handle_alarm(trigger, runtime.deadline(svc, context, cap), cfg).as_dict()

    return idempotent_function(data_keyword_argument="key", persistence_store=persistence, config=_config)(process)


def reset() -> None:
    """Forget the idempotency wrapper bound to the previous service (tests, `invoke`)."""
    global _process
    _process = None


@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    global _process
    try:
        triggers = parse_alarm_event(event)
    except InvalidEventError as exc:
        # Raise: an asynchronous invocation then lands in the function's failure destination.
        logger.error(str(exc))
        raise
    with _lock:
        if _process is None:
            _process = _build()
    _config.register_lambda_context(context)
    results = []
    for trigger in triggers:
        if not trigger.is_alarm_transition:
            # Not a failure signal: never worth an idempotency record.
            results.append(runtime.service().handle_alarm(trigger, runtime.deadline(runtime.service(), context)).as_dict())
            continue
        try:
            results.append(_process(key=trigger.idempotency_key(), trigger=trigger, context=context))
        except IdempotencyAlreadyInProgressError:
            reason = f"{trigger.describe()}: another delivery of this transition is being handled"
            logger.info(reason)
            results.append({"outcome": "duplicate", "reason": reason})
        except IdempotencyPersistenceLayerError as exc:
            # The idempotency store (the state table) is failing: decide without it. The cluster's lease
            # and its handled-trigger record still keep a second delivery from acting twice; if the table
            # refuses those too, nothing is changed and reconcile acts on the alarm once the table is back.
            logger.warning(f"idempotency store unavailable ({exc}); deciding under the lease alone")
            try:
                results.append(runtime.service().handle_alarm(trigger, runtime.deadline(runtime.service(), context)).as_dict())
            except LeaseBusyError as busy:
                results.append({"outcome": "busy", "reason": str(busy)})
        except LeaseBusyError as exc:
            logger.warning(str(exc))
            results.append({"outcome": "busy", "reason": str(exc)})
    return results[0] if len(results) == 1 else {"results": results}
