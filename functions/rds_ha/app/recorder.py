"""The recorder: every decision and step leaves one sentence, said the same in the log, the history
(state table), the notification (SNS) and a metric (EMF). Workflows and the executor record through it,
never through the table or the notifier themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from ..adapters.notify import Notifier
from ..adapters.state import StateTable
from ..core.clock import Clock
from ..core.config import ClusterConfig
from ..core.errors import AwsError, LeaseLostError
from ..observability import emit, logger
from .results import Result


class Recorder:
    def __init__(self, table: StateTable, notifier: Notifier | None, clock: Clock, topic_arn: str | None) -> None:
        self.table, self.notifier, self.clock, self.topic_arn = table, notifier, clock, topic_arn
        # Who is shown each step as it is recorded, and each look of a wait (an operator's terminal).
        self.watchers: list[Callable[[str, str], None]] = []

    def history(self, cluster: str, kind: str, message: str, **details: Any) -> None:
        """The log line and the history entry (raises what the table raises: the caller's step failed)."""
        logger.info(message, extra={"cluster": cluster, "kind": kind, **{k: str(v) for k, v in details.items()}})
        self.table.add_history(cluster, self.clock.now(), kind, message, details)
        self.progress(kind, message)

    def progress(self, kind: str, message: str) -> None:
        """Show `message` to whoever watches this run (nothing is stored): a step done, a wait's look."""
        for watch in self.watchers:
            watch(kind, message)

    def notify(self, cfg: ClusterConfig, kind: str, message: str, **details: Any) -> None:
        """Publish to the cluster's topic (or the stack's); a notification never stops a run."""
        topic = cfg.notifications.sns_topic_arn or self.topic_arn
        if not topic or self.notifier is None:
            return
        body = {"type": kind, "cluster": cfg.name, "message": message, "at": self.clock.now().isoformat(), **details}
        try:
            self.notifier.publish(topic, f"rds-ha {cfg.name}: {kind}", body)
        except AwsError as exc:
            logger.warning(f"notification failed: {exc}", extra={"cluster": cfg.name})

    @staticmethod
    def metric(name: str, cluster: str, value: float = 1, unit: MetricUnit = MetricUnit.Count) -> None:
        emit(name, cluster, value, unit)

    def _best_effort(self, cluster: str, kind: str, message: str, **details: Any) -> None:
        try:
            self.table.add_history(cluster, self.clock.now(), kind, message, details)
        except AwsError:
            logger.error(f"could not record {kind} in the state table either", extra={"cluster": cluster})

    def aws_failed(self, cfg: ClusterConfig, trigger: str, exc: AwsError) -> Result:
        """AWS failed us past its retries. Recorded and notified (best effort); the transition is not
        marked handled, so the next reconcile decides again from what AWS shows then."""
        reason = f"AWS error, will retry on the next reconcile: {exc}"
        logger.error(reason, extra={"cluster": cfg.name})
        self._best_effort(cfg.name, "aws_error", reason, trigger=trigger, code=exc.code)
        self.notify(cfg, "aws_error", reason)
        return Result(cfg.name, "error", reason, error=str(exc))

    def lease_lost(self, cfg: ClusterConfig, trigger: str, exc: LeaseLostError) -> Result:
        """This run stalled past its lease: it stops, says why (best effort), and leaves the cluster to
        the run that holds it now (or to the next reconcile)."""
        logger.warning(str(exc), extra={"cluster": cfg.name})
        self._best_effort(cfg.name, "lease_lost", str(exc), trigger=trigger)
        return Result(cfg.name, "lease_lost", str(exc), error=str(exc))

    @staticmethod
    def ignored(cluster: str | None, reason: str) -> Result:
        logger.info(f"ignored: {reason}")
        return Result(cluster, "ignored", reason)
