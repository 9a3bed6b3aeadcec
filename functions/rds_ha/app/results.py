"""What a decision or a run came to, as handlers return it and the CLI prints it: immutable, typed.

A result's reason is one sentence made of the decision's and then the run's; `joined` is the one place
sentences are put together, so every path reads the same ("decided; what the run did").
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..core.actions import CandidateVerdict, Outcome, Plan
from ..core.readiness import Readiness


def joined(*parts: str | None, sep: str = "; ") -> str:
    """Sentences of one reason, in order, empty ones left out."""
    return sep.join(p for p in parts if p)


def candidate_dict(v: CandidateVerdict) -> dict[str, Any]:
    return {"instance": v.instance, "eligible": v.eligible, "reason": v.reason, "lag": v.lag, "lag_bytes": v.lag_bytes, "az": v.az}


@dataclass(frozen=True)
class Result:
    cluster: str | None
    outcome: Outcome
    reason: str
    actions: tuple[str, ...] = ()
    candidates: tuple[CandidateVerdict, ...] = ()
    chosen: str | None = None
    error: str | None = None
    # A workflow's steps as planned (dry run and the decision that starts it).
    steps: tuple[str, ...] = ()
    # Could the cluster fail over now (reconcile's readiness judgement).
    readiness: Readiness | None = None

    @classmethod
    def of(cls, cluster: str, plan: Plan, steps: tuple[str, ...] = ()) -> Result:
        """A decision as the plan states it: outcome, reason, actions, every candidate's verdict."""
        return cls(cluster, plan.outcome, plan.reason, tuple(a.describe() for a in plan.actions), plan.candidates, plan.chosen, steps=steps)

    def then(self, run: Result) -> Result:
        """This decision followed by the run that carried it out: the run's outcome, both reasons
        (the run's only when it did not simply complete), every action done."""
        reason = self.reason if run.outcome == "complete" else joined(self.reason, run.reason)
        return replace(self, outcome=run.outcome, error=run.error, reason=reason, actions=self.actions + run.actions)

    def after(self, first: str) -> Result:
        """The same result, its reason preceded by what led to it."""
        return replace(self, reason=joined(first, self.reason))

    def adding(self, more: Result) -> Result:
        """The same result with a further run's reason and actions (reconcile's capacity check after its sync)."""
        return replace(self, reason=joined(self.reason, more.reason), actions=self.actions + more.actions)

    def as_dict(self) -> dict[str, Any]:
        """JSON for handlers and `--json`; empty fields left out."""
        out: dict[str, Any] = {
            "cluster": self.cluster,
            "outcome": self.outcome,
            "reason": self.reason,
            "actions": list(self.actions),
            "candidates": [candidate_dict(v) for v in self.candidates],
            "chosen": self.chosen,
            "error": self.error,
            "steps": list(self.steps),
            "readiness": self.readiness.as_dict(candidates=False) if self.readiness is not None else None,
        }
        return {k: v for k, v in out.items() if v not in (None, [], {})}
