"""An operator's controls: pause, resume, acknowledge. Each changes only its own fields of the state
(a versioned write, retried on a concurrent change) and records who did it and why."""

from __future__ import annotations

from typing import Any

from ..core.config import ClusterConfig
from ..core.errors import StateConflictError
from ..core.models import ClusterState, Marker
from .deps import Deps


class Controls:
    def __init__(self, deps: Deps) -> None:
        self.d = deps

    def _update(self, cfg: ClusterConfig, kind: str, message: str, **update: Any) -> ClusterState:
        for _ in range(5):
            state = self.d.table.get_state(cfg.name) or ClusterState(cluster=cfg.name, primary=cfg.primary)
            try:
                new = self.d.table.put_state(state.model_copy(update=update))
            except StateConflictError:
                continue
            self.d.recorder.history(cfg.name, kind, message)
            return new
        raise StateConflictError(f"state of {cfg.name} kept changing; try again")

    def pause(self, cfg: ClusterConfig, by: str, reason: str) -> ClusterState:
        marker = Marker(by=by, at=self.d.clock.now(), reason=reason)
        return self._update(cfg, "paused", f"paused by {by}" + (f": {reason}" if reason else ""), paused=marker)

    def resume(self, cfg: ClusterConfig, by: str) -> ClusterState:
        # Forget the handled alarm transitions: an alarm still in ALARM is decided again by the next reconcile.
        return self._update(cfg, "resumed", f"resumed by {by}", paused=None, handled_alarms={})

    def ack(self, cfg: ClusterConfig, by: str) -> ClusterState:
        return self._update(cfg, "acknowledged", f"cooldown acknowledged by {by}", acknowledged=Marker(by=by, at=self.d.clock.now()))
