"""An operator's controls: pause, resume, acknowledge, break a lease. Each changes only its own fields
of the state (a versioned write, retried on a concurrent change), records who did it and why, and
changes nothing (and records nothing) when there is nothing to change."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..core.clock import utc
from ..core.config import ClusterConfig
from ..core.errors import StateConflictError
from ..core.models import ClusterState, LeaseView, Marker
from ..core.planner.guards import cooldown_left
from .deps import Deps
from .results import Result

# What lifting a refusal's reason means for a primary that is down (level-triggered: core.alarms.standing_failover).
_DECIDED_AGAIN = "a failover alarm still in ALARM is decided again by the next reconcile (within a minute)"


class Controls:
    def __init__(self, deps: Deps) -> None:
        self.d = deps

    def _state(self, cfg: ClusterConfig) -> ClusterState:
        return self.d.table.get_state(cfg.name) or ClusterState(cluster=cfg.name, primary=cfg.primary)

    def _update(self, cfg: ClusterConfig, kind: str, message: str, unchanged: Callable[[ClusterState], str | None], **update: Any) -> Result:
        """Write `update` unless `unchanged` says why not, judged on each state read (a versioned write: a
        concurrent change, another operator's pause included, is read again and judged again)."""
        for _ in range(5):
            state = self._state(cfg)
            why = unchanged(state)
            if why is not None:
                return Result(cfg.name, "ignored", why)
            try:
                self.d.table.put_state(state.model_copy(update=update))
            except StateConflictError:
                continue
            self.d.recorder.history(cfg.name, kind, message)
            return Result(cfg.name, "done", message)
        raise StateConflictError(f"state of {cfg.name} kept changing; try again")

    def pause(self, cfg: ClusterConfig, by: str, reason: str) -> Result:
        def paused_already(state: ClusterState) -> str | None:
            paused = state.paused
            if paused is None:
                return None
            why = f": {paused.reason}" if paused.reason else ""
            return f"already paused by {paused.by} at {utc(paused.at)}{why}; unchanged (rds-ha resume {cfg.name}, then pause again)"

        marker = Marker(by=by, at=self.d.clock.now(), reason=reason)
        return self._update(cfg, "paused", f"paused by {by}" + (f": {reason}" if reason else ""), paused_already, paused=marker)

    def resume(self, cfg: ClusterConfig, by: str) -> Result:
        def not_paused(state: ClusterState) -> str | None:
            return "not paused; nothing changed" if state.paused is None else None

        # Forget the handled alarm transitions: a capacity alarm still in ALARM is decided again by the next reconcile
        # (a failover alarm in ALARM is, in any case: a standing request).
        return self._update(cfg, "resumed", f"resumed by {by}; {_DECIDED_AGAIN}", not_paused, paused=None, handled_alarms={})

    def ack(self, cfg: ClusterConfig, by: str) -> Result:
        now = self.d.clock.now()

        def nothing_to_ack(state: ClusterState) -> str | None:
            if state.last_failover_at is None:
                return "has had no failover: nothing is cooling down; nothing recorded"
            if cooldown_left(cfg, state, now) is not None:
                return None
            done = "already acknowledged" if state.acknowledged is not None and state.acknowledged.at >= state.last_failover_at else "over"
            return f"the cooldown after the failover at {utc(state.last_failover_at)} is {done}; nothing recorded"

        return self._update(cfg, "acknowledged", f"cooldown acknowledged by {by}; {_DECIDED_AGAIN}", nothing_to_ack, acknowledged=Marker(by=by, at=now))

    def lease(self, cfg: ClusterConfig) -> LeaseView | None:
        return self.d.leases.view(cfg.name)

    def break_lease(self, cfg: ClusterConfig, owner: str, by: str) -> Result:
        """Delete the lease `owner` holds (the one the operator was shown); a lease taken since is left alone."""
        if not self.d.leases.break_(cfg.name, owner):
            return Result(cfg.name, "ignored", f"{owner} no longer holds the lease; nothing changed")
        message = f"lease held by {owner} broken by {by}"
        self.d.recorder.history(cfg.name, "lease_broken", message)
        return Result(cfg.name, "done", message)
