"""What every handler shares: one App per process (clients reused across invocations), the
invocation's deadline, and one answer for a cluster whose lease another run holds."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from ..app import App, Settings
from ..core.clock import Clock
from ..core.errors import InvalidEventError, LeaseBusyError
from ..events import AlarmTrigger, parse_alarm_event
from ..observability import logger

# Leave this much of the Lambda timeout for recording and releasing the lease.
SAFETY_MARGIN = timedelta(seconds=20)
_app: App | None = None


def app() -> App:
    global _app
    if _app is None:
        _app = App.for_settings(Settings.from_env())
    return _app


def use(built: App) -> None:
    """Run handlers with this app (tests and the demo inject a simulated clock this way)."""
    global _app
    _app = built


def reset() -> None:
    """Forget the cached app (tests, and the CLI's `invoke` after changing the environment)."""
    global _app
    _app = None


def cluster_names(event: Any) -> list[str] | None:
    """A scheduled event carries nothing we need; {"clusters": [...]} narrows the run."""
    if not isinstance(event, dict):
        raise InvalidEventError(f"event must be a JSON object, got {type(event).__name__}")
    names = event.get("clusters")
    if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
        raise InvalidEventError("'clusters' must be a list of cluster names")
    return names


def deadline(clock: Clock, context: Any, cap_seconds: float | None = None) -> datetime:
    """When this invocation must stop waiting: the Lambda timeout less a margin, capped."""
    now = clock.now()
    remaining = timedelta(milliseconds=context.get_remaining_time_in_millis()) if context is not None else timedelta(minutes=5)
    until = now + remaining - SAFETY_MARGIN
    if cap_seconds is not None:
        until = min(until, now + timedelta(seconds=cap_seconds))
    return max(until, now)


def answer(run: Callable[[], dict[str, Any]], then: str) -> dict[str, Any]:
    """The run's answer, or "busy" while another run holds the cluster's lease (`then` says who acts on it later)."""
    try:
        return run()
    except LeaseBusyError as exc:
        logger.warning(f"{exc}; {then}")
        return {"outcome": "busy", "reason": str(exc)}


def parsed_alarms(event: Any) -> list[Any]:
    try:
        return parse_alarm_event(event)
    except InvalidEventError as exc:
        logger.error(str(exc))  # raised: an asynchronous invocation lands in the on-failure destination
        raise


def handle_capacity_alarms(event: Any, context: Any, roles: tuple[str, ...]) -> dict[str, Any]:
    """Scaling and Multi-AZ alarms: each transition decided once (the state remembers the last one
    handled per alarm, under the cluster's lease), so a second delivery changes nothing."""
    a = app()

    def one(trigger: AlarmTrigger) -> dict[str, Any]:
        return a.capacity.handle_alarm(trigger, deadline(a.clock, context, cap_seconds=60), roles).as_dict()

    results = [answer(partial(one, t), "reconcile acts on the alarm if it stays in ALARM") for t in parsed_alarms(event)]
    return results[0] if len(results) == 1 else {"results": results}
