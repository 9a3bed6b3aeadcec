"""What every handler shares: one Service per process (clients reused across invocations)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ..adapters.aws import AwsClients
from ..core.errors import InvalidEventError, LeaseBusyError
from ..events import parse_alarm_event
from ..observability import logger
from ..service import Service, Settings

# Leave this much of the Lambda timeout for recording and releasing the lease.
SAFETY_MARGIN = timedelta(seconds=20)
_service: Service | None = None


def service() -> Service:
    global _service
    if _service is None:
        _service = Service(AwsClients(), Settings.from_env())
    return _service


def use(svc: Service) -> None:
    """Run handlers with this service (tests and the demo inject a simulated clock this way)."""
    global _service
    _service = svc


def reset() -> None:
    """Forget the cached service (tests, and the CLI's `invoke` after changing the environment)."""
    global _service
    _service = None


def cluster_names(event: Any) -> list[str] | None:
    """A scheduled event carries nothing we need; {"clusters": [...]} narrows the run."""
    if not isinstance(event, dict):
        raise InvalidEventError(f"event must be a JSON object, got {type(event).__name__}")
    names = event.get("clusters")
    if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
        raise InvalidEventError("'clusters' must be a list of cluster names")
    return names


def deadline(svc: Service, context: Any, cap_seconds: float | None = None) -> datetime:
    """When this invocation must stop waiting: the Lambda timeout less a margin, capped."""
    now = svc.clock.now()
    remaining = timedelta(milliseconds=context.get_remaining_time_in_millis()) if context is not None else timedelta(minutes=5)
    until = now + remaining - SAFETY_MARGIN
    if cap_seconds is not None:
        until = min(until, now + timedelta(seconds=cap_seconds))
    return max(until, now)


def handle_capacity_alarms(event: Any, context: Any, roles: tuple[str, ...]) -> dict[str, Any]:
    """Scaling and Multi-AZ alarms: each transition decided once (the state remembers the last one
    handled per alarm, under the cluster's lease), so a second delivery changes nothing."""
    try:
        triggers = parse_alarm_event(event)
    except InvalidEventError as exc:
        logger.error(str(exc))  # raised: the invocation lands in the on-failure destination
        raise
    svc = service()
    results = []
    for trigger in triggers:
        try:
            results.append(svc.capacity.handle_alarm(trigger, deadline(svc, context, cap_seconds=60), roles).as_dict())
        except LeaseBusyError as exc:
            logger.warning(f"{exc}; reconcile acts on the alarm if it stays in ALARM")
            results.append({"outcome": "busy", "reason": str(exc)})
    return results[0] if len(results) == 1 else {"results": results}
