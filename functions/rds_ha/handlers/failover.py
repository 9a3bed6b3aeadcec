"""FailoverFunction: a primary-down alarm (EventBridge, SNS or direct action) -> failover."""

from __future__ import annotations

import threading
from functools import partial
from typing import Any

from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError, IdempotencyPersistenceLayerError
from aws_lambda_powertools.utilities.typing import LambdaContext

from ..core.errors import InvalidEventError
from ..events import AlarmTrigger, is_probe_verdict, parse_probe_verdict
from ..observability import logger
from . import runtime

_config = IdempotencyConfig(expires_after_seconds=3600)
_process: Any = None
_lock = threading.Lock()
LATER = "reconcile acts on the alarm if it stays in ALARM"


def decide(trigger: AlarmTrigger, context: Any) -> dict[str, Any]:
    """The decision on one transition, within failover.wait_seconds of the cluster's config."""
    a = runtime.app()
    cfg = a.cluster_for_alarm(trigger.alarm_name)
    cap = cfg.failover.wait_seconds if cfg else None
    return a.handle_alarm(trigger, runtime.deadline(a.clock, context, cap), cfg).as_dict()


def _build() -> Any:
    def process(key: dict[str, str], trigger: AlarmTrigger, context: Any) -> dict[str, Any]:
        return decide(trigger, context)

    persistence = runtime.app().idempotency_store("FailoverFunction")
    return idempotent_function(data_keyword_argument="key", persistence_store=persistence, config=_config)(process)


def reset() -> None:
    """Forget the idempotency wrapper bound to the previous app (tests, `invoke`)."""
    global _process
    _process = None


def _once(trigger: AlarmTrigger, context: Any) -> dict[str, Any]:
    """One transition decided once across deliveries (Powertools idempotency on its key)."""
    try:
        result: dict[str, Any] = _process(key=trigger.idempotency_key(), trigger=trigger, context=context)
        return result
    except IdempotencyAlreadyInProgressError:
        reason = f"{trigger.describe()}: another delivery of this transition is being handled"
        logger.info(reason)
        return {"outcome": "duplicate", "reason": reason}
    except IdempotencyPersistenceLayerError as exc:
        # The idempotency store (the state table) is failing: decide without it. The cluster's lease
        # and its handled-transition record still keep a second delivery from acting twice; if the table
        # refuses those too, nothing is changed and reconcile acts on the alarm once the table is back.
        logger.warning(f"idempotency store unavailable ({exc}); deciding under the lease alone")
        return decide(trigger, context)


def _verdict(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The SQL probe's confirmed verdict (HealthProbeFunction, asynchronously): a failover request judged as an
    alarm's is. A second one is harmless: the lease, the workflow in progress and the primary's change stop it."""
    try:
        verdict = parse_probe_verdict(event)
    except InvalidEventError as exc:
        logger.error(str(exc))
        raise
    a = runtime.app()
    cfg = next((c for c in a.clusters() if c.name == verdict.cluster), None)
    cap = cfg.failover.wait_seconds if cfg else None
    return runtime.answer(lambda: a.probe_verdict(verdict, runtime.deadline(a.clock, context, cap), cfg).as_dict(), LATER)


@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    global _process
    if is_probe_verdict(event):
        return _verdict(event, context)
    triggers = runtime.parsed_alarms(event)
    with _lock:
        if _process is None:
            _process = _build()
    _config.register_lambda_context(context)
    results = []
    for trigger in triggers:
        # Not a failure signal: never worth an idempotency record.
        once = decide if not trigger.is_alarm_transition else _once
        results.append(runtime.answer(partial(once, trigger, context), LATER))
    return results[0] if len(results) == 1 else {"results": results}
