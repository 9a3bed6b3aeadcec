"""HealthProbeFunction (in the VPC, every minute): sample each probed cluster every
`probe.interval_seconds` until the minute is over; publish high-resolution metrics (namespace rds-ha)
that a 10-second primary-down alarm and the failover decision read."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ..core.errors import InvalidEventError
from ..observability import logger
from . import runtime

# One invocation samples for this long; the schedule starts the next one as it ends.
RUN_SECONDS = 60
_probe: Any = None


def probe() -> Any:
    global _probe
    if _probe is None:
        _probe = runtime.app().health_probe()  # the drivers load with the probe, in this function only
    return _probe


def use(p: Any) -> None:
    """Run the handler with this probe (tests point it at local servers this way)."""
    global _probe
    _probe = p


def reset() -> None:
    global _probe
    _probe = None


@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    names = runtime.cluster_names(event)
    samples = event.get("samples")
    if samples is not None and (not isinstance(samples, int) or isinstance(samples, bool) or not 1 <= samples <= 100):
        raise InvalidEventError("'samples' must be a whole number from 1 to 100")
    p = probe()
    last: dict[str, dict[str, Any]] = {}

    def keep(found: list[Any]) -> None:
        for s in found:
            last[s.cluster] = {"primary": s.primary, "healthy": s.primary_healthy, "reason": s.primary_reason, "errors": list(s.probe_errors)}

    ticks = p.run(names, runtime.deadline(p.clock, context, cap_seconds=RUN_SECONDS), on_sample=keep, max_samples=samples)
    return {"samples": ticks, "clusters": last}
