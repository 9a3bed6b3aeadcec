"""How every workflow runs on a cluster: under its lease, and with one answer for each way a run ends
early. A busy lease is the caller's to answer (a handler says "busy", reconcile "skipped"); a lost
lease, AWS failing past its retries and a state that kept changing become results here."""

from __future__ import annotations

from collections.abc import Callable

from ..core.actions import Outcome
from ..core.config import ClusterConfig
from ..core.errors import AwsError, LeaseBusyError, LeaseLostError, StateConflictError
from ..observability import logger
from .deps import Deps
from .results import Result


def under_lease(d: Deps, cfg: ClusterConfig, trigger: str, body: Callable[[], Result], wait: float | None = None, busy: Outcome | None = None) -> Result:
    """`body` under the cluster's lease (waiting up to `wait` seconds, default the deps'), renewed as
    it goes. LeaseBusyError is raised, unless `busy` names the outcome to answer with."""
    try:
        with d.leases.hold(cfg.name, d.lease_wait_seconds if wait is None else wait):
            return body()
    except LeaseBusyError as exc:
        if busy is None:
            raise
        return Result(cfg.name, busy, str(exc))
    except LeaseLostError as exc:
        return d.recorder.lease_lost(cfg, trigger, exc)
    except AwsError as exc:
        return d.recorder.aws_failed(cfg, trigger, exc)
    except StateConflictError as exc:
        logger.info(f"{cfg.name}: {exc}", extra={"cluster": cfg.name})
        return Result(cfg.name, "busy", f"state changed concurrently; the next run decides again ({exc})")
