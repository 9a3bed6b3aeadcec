"""The dry run states the steps a failover takes, in the order it takes them."""

from __future__ import annotations

from rds_ha.core.planner import FailoverRequest
from rds_ha.handlers.reconcile import handler as reconcile_handler

from ..builders import Sandbox, build_cluster, context

# The history entry each outline step leads to (by the step's first words).
KIND_OF_STEP = {
    "promote": "promote_issued",
    "fence": "fenced",
    "take the orphans": "reader_dns",
    "once": "writer_dns",
    "create replicas": "replica_created",
    "delete the orphans": "orphan_deleted",
    "stop": "old_primary_stopped",
}


def test_the_dry_run_states_the_steps_in_the_order_the_failover_takes_them(aws: Sandbox) -> None:
    cfg = build_cluster(aws, extra_failover=", stop_old_primary: true")
    now = aws.clock.now()
    # A drill: the old primary stays available, so every step is taken (stopping it too).
    request = FailoverRequest(trigger="drill", failure_time=now, workflow_id="drill", automatic=False, drill=True)
    dry = aws.service.failover(cfg, request, now, dry_run=True)
    assert dry.outcome == "start", dry.reason
    planned = [next(kind for words, kind in KIND_OF_STEP.items() if step.startswith(words)) for step in dry.steps]
    assert len(planned) == 7, dry.steps

    aws.service.failover(cfg, request, now)
    for _ in range(30):
        if aws.state().workflow is None:
            break
        aws.clock.advance(60)
        reconcile_handler({}, context())
    kinds = [h["kind"] for h in reversed(aws.service.history("orders"))]
    assert "failover_completed" in kinds, kinds
    taken = sorted(planned, key=kinds.index)  # each step's first entry in the history
    assert planned == taken, (dry.steps, kinds)
