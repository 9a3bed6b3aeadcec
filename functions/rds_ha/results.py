"""What a decision came to, as handlers return it and the CLI prints it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Result:
    cluster: str | None
    outcome: str
    reason: str
    actions: list[str] = field(default_factory=list)
    candidates: list[dict[str, Any]] = field(default_factory=list)
    chosen: str | None = None
    error: str | None = None
    steps: list[str] = field(default_factory=list)
    # Could the cluster fail over now (reconcile's readiness judgement): ready, eligible_candidates, reasons.
    readiness: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, [], {})}
