"""The application layer: the workflows that turn a trigger into decisions and AWS changes.

Who may import whom:
- `handlers/` and `cli/` import this package (`App`, `Settings`, `Result`, `DrillReport`) and the models
  of `core`, no module of it;
  they never touch the state table, the executor or an adapter.
- Each workflow module (failover, switchover, drive, reconcile, capacity, rds_events, controls, apply,
  status, readiness, drill, probe) takes the one frozen `Deps` and calls other workflows only through
  their public methods. Runs on a cluster go through `runs.under_lease`.
- Below it: `core` (pure: models, config, planner, readiness, status) and `adapters` (boto3), which
  import nothing of this package. Only `deps.py` constructs adapters.
"""

from .app import App
from .deps import Settings
from .drill import DrillReport
from .results import Result

__all__ = ["App", "DrillReport", "Result", "Settings"]
