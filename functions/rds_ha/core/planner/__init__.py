"""The planner: pure functions from a Topology to a Plan of actions, each with its reason.

Nothing here performs I/O. `decide_failover` answers "should we fail over, and to whom?";
`plan_workflow` answers "what is left of the failover in progress?" by comparing the workflow's
goal with the instances and records as AWS shows them, so it is safe to call after a crash at
any point: a step already done is simply not planned again.

Modules, each importing only `core` and the modules before it: `request`, `guards` (the refusals: a
reason or None), `candidates`, `dns`, `redundancy`, `fence`, `proxy`, `decide`, `retire`, `steady`, `workflow`, `capacity`. Callers
import from this package.
"""

from .candidates import evaluate_candidates, judged_now, ranked
from .capacity import plan_add_replica, plan_remove, plan_remove_replica, plan_scale
from .decide import decide_failover, decide_switchover
from .dns import diff_records, reader_changes, reader_verdicts, writer_changes
from .guards import in_progress, pause_limitation
from .proxy import proxy_limitation
from .redundancy import live_replicas, no_replicas_of
from .request import FailoverRequest, current_transition
from .retire import plan_retire
from .steady import plan_multi_az, plan_steady
from .workflow import WRITABLE, outline, plan_workflow

__all__ = [
    "WRITABLE",
    "FailoverRequest",
    "current_transition",
    "decide_failover",
    "decide_switchover",
    "plan_retire",
    "diff_records",
    "evaluate_candidates",
    "in_progress",
    "judged_now",
    "live_replicas",
    "no_replicas_of",
    "outline",
    "pause_limitation",
    "plan_add_replica",
    "plan_multi_az",
    "plan_remove",
    "plan_remove_replica",
    "plan_scale",
    "plan_steady",
    "plan_workflow",
    "proxy_limitation",
    "ranked",
    "reader_changes",
    "reader_verdicts",
    "writer_changes",
]
