"""Could this cluster fail over right now, and would the failover complete?

One pure judgement over a topology snapshot (and the failover alarms as CloudWatch shows them), used by
`rds-ha check`, `status` and the scheduled reconcile (which publishes FailoverReady and
EligibleCandidates). The candidates' verdicts are the planner's own: the same sentences as
`failover --dry-run`. Failovers that go wrong at 3 a.m. mostly happen to clusters that were not ready
for days before; each reason here names one such condition and what to do about it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .. import TAG_CLUSTER
from .actions import CandidateVerdict, ChangeRecords
from .models import AVAILABLE, TERMINAL_STATUSES, AlarmStatus, Instance, Topology
from .planner import FailoverRequest, judged_now, no_replicas_of, plan_steady, proxy_limitation, ranked
from .planner.guards import cooldown_seconds_left, in_progress, pause_limitation


@dataclass(frozen=True)
class Readiness:
    cluster: str
    ready: bool
    reasons: tuple[str, ...]
    eligible: int
    candidates: tuple[CandidateVerdict, ...] = ()
    # The proxy's targets and their health, in one line (cluster.proxy); None: no proxy, or not read.
    proxy: str | None = None
    # What would fail later without making the cluster unready now (app.preflight): said, never counted.
    warnings: tuple[str, ...] = ()

    @property
    def sentence(self) -> str:
        if self.ready:
            return f"ready: {self.eligible} eligible candidate(s)"
        return "not ready: " + "; ".join(self.reasons)

    def as_dict(self, candidates: bool = True) -> dict[str, object]:
        out: dict[str, object] = {"cluster": self.cluster, "ready": self.ready, "eligible_candidates": self.eligible, "reasons": list(self.reasons)}
        if self.proxy is not None:
            out["proxy"] = self.proxy
        if self.warnings:
            out["warnings"] = list(self.warnings)
        if candidates:
            out["candidates"] = [{"instance": v.instance, "eligible": v.eligible, "reason": v.reason} for v in self.candidates]
        return out


def _major(version: str, engine: str) -> str:
    parts = version.split(".")
    return parts[0] if engine.startswith("postgres") else ".".join(parts[:2])


def assess(topo: Topology, alarms: Mapping[str, AlarmStatus] | None, hooks: Mapping[str, bool] | None = None, stalled: str | None = None) -> Readiness:
    """`topo` with its latest ReplicaLag (recent_lag); `alarms`: the cluster's failover alarms as
    DescribeAlarms shows them (None: not read, not judged); `hooks`: hook ARN -> exists (None: not looked up);
    `stalled`: why a failover alarm in ALARM has no failover under way (a refusal, a block, or the next
    reconcile not run yet): the primary is down and not failed over, whatever the replicas' latest lag says."""
    cfg, primary = topo.cluster, topo.primary
    request = FailoverRequest(trigger="readiness check", failure_time=topo.now, workflow_id="", automatic=True, planned=True)
    # Judged by each replica's latest ReplicaLag, as a switchover is judged.
    verdicts, eligible = ranked(judged_now(topo), request) if primary is not None else ([], [])
    reasons = _down_reasons(topo, alarms, stalled) + _state_reasons(topo)
    if primary is not None and not eligible:
        detail = "; ".join(f"{v.instance}: {v.reason}" for v in verdicts) or f"{primary.id} has no replicas"
        reasons.append(f"no replica qualifies for promotion ({detail})")
    if primary is not None:
        reasons += _replica_reasons(topo, primary)
        if not primary.is_replica:
            reasons += _rebuild_reasons(topo, primary)
    reasons += _alarm_reasons(topo, alarms)
    reasons += _probe_reasons(topo)
    for hook, exists in (hooks or {}).items():
        if not exists:
            fate = _hook_fate(cfg.hooks.on_timeout)
            reasons.append(f"hooks.pre_failover {hook} does not exist: with on_timeout {cfg.hooks.on_timeout}, a failover would {fate}")
    if primary is not None and not primary.is_replica and primary.status == AVAILABLE and topo.state.workflow is None:
        reasons += [f"DNS drifted: {a.reason} (reconcile repairs it)" for a in plan_steady(topo).actions if isinstance(a, ChangeRecords)]
        proxy = proxy_limitation(topo)
        if proxy is not None:  # the proxy's clients reach no writer (or the wrong one) now
            reasons.append(proxy)
    return Readiness(cfg.name, not reasons, tuple(reasons), len(eligible), tuple(verdicts), _proxy_line(topo))


def _proxy_line(topo: Topology) -> str | None:
    cfg, view = topo.cluster.proxy, topo.proxy
    if cfg is None or view is None:
        return None
    targets = f"targets not read ({view.error})" if view.error else (", ".join(f"{t.instance} {t.health}" for t in view.targets) or "no target")
    return f"proxy {cfg.name} ({cfg.target_group}) -> {targets}"


def _down_reasons(topo: Topology, alarms: Mapping[str, AlarmStatus] | None, stalled: str | None) -> list[str]:
    """A primary down that nothing fails over: the answer to its alarm, or no alarm in ALARM to ask at all."""
    primary = topo.primary
    if primary is None or topo.state.workflow is not None:
        return []
    if stalled is not None:
        down = f"{primary.id} is {primary.status}" if primary.status != AVAILABLE else f"{primary.id} is down by its failover alarm (RDS: available)"
        return [f"the primary {down} and is not failed over: {stalled}"]
    firing = [a for a in (alarms or {}).values() if a.state == "ALARM"]
    if primary.status in TERMINAL_STATUSES and not firing and alarms is not None and topo.cluster.alarms.failover:
        return [
            f"the primary {primary.id} is {primary.status} and no failover alarm is in ALARM: nothing fails it over "
            f"until one is (or rds-ha failover {topo.cluster.name})"
        ]
    return []


def _state_reasons(topo: Topology) -> list[str]:
    """What rds-ha's own state holds back: a pause, a workflow, the cooldown, a wrong primary."""
    state, primary, reasons = topo.state, topo.primary, []
    paused = pause_limitation(state, automatic=True)
    if paused is not None:
        reasons.append(f"{paused}; an automatic failover would only be recorded (rds-ha resume)")
    busy = in_progress(state)
    if busy is not None:
        reasons.append(busy)
    left = cooldown_seconds_left(topo)
    if left is not None:
        reasons.append(f"in cooldown for {int(left)}s more after the last failover: a new one waits for a human (rds-ha ack)")
    if primary is None:
        reasons.append(f"primary {state.primary} not found in {topo.cluster.region}")
    elif primary.is_replica:
        reasons.append(f"primary {primary.id} is itself a replica of {primary.source}: the recorded primary is wrong")
    return reasons


def _replica_reasons(topo: Topology, primary: Instance) -> list[str]:
    cfg, reasons = topo.cluster, []
    for replica in topo.replicas_of(primary.id):
        if replica.cluster_tag != cfg.name:
            reasons.append(
                f"{replica.id} replicates from {primary.id} but is not tagged {TAG_CLUSTER}={cfg.name}: "
                "rds-ha will neither promote nor replace it (rds-ha apply --tag-members)"
            )
        elif _major(replica.engine_version, replica.engine) != _major(primary.engine_version, primary.engine) and replica.engine_version:
            reasons.append(
                f"{replica.id} runs {replica.engine} {replica.engine_version}, {primary.id} {primary.engine_version}: "
                "RDS replicates within one major version only"
            )
    return reasons


def _rebuild_reasons(topo: Topology, primary: Instance) -> list[str]:
    """Why redundancy could not be rebuilt after a failover (RDS would refuse the replicas)."""
    reasons = []
    refused = no_replicas_of(primary)
    if refused:
        reasons.append(f"after a failover no redundancy could be rebuilt: {refused}")
    for other in topo.cluster.replicas.cross_region:
        if primary.storage_encrypted and not other.kms_key_id:
            reasons.append(f"replicas.cross_region {other.region} has no kms_key_id: RDS needs a key of {other.region} for a replica of encrypted {primary.id}")
        if primary.subnet_group and not other.subnet_group:
            reasons.append(f"replicas.cross_region {other.region} has no subnet_group: {primary.id} is in a VPC")
    return reasons


def _hook_fate(on_timeout: str) -> str:
    return "be vetoed" if on_timeout == "veto" else "proceed after the hook's timeout"


def _alarm_reasons(topo: Topology, alarms: Mapping[str, AlarmStatus] | None) -> list[str]:
    cfg = topo.cluster
    if not cfg.alarms.failover:
        return ["no failover alarm is mapped (alarms.failover): only the SQL probe or an operator starts a failover"] if cfg.probe is None else []
    if alarms is None:
        return []
    out = []
    for name in cfg.alarms.failover:
        alarm = alarms.get(name)
        if alarm is None:
            out.append(f"failover alarm {name} does not exist in CloudWatch")
            continue
        watched = alarm.dimensions.get("DBInstanceIdentifier")
        if watched is not None and watched != topo.state.primary:
            out.append(f"failover alarm {name} watches {watched}, not the primary {topo.state.primary}: a failure of the primary would go unseen")
        if alarm.state == "INSUFFICIENT_DATA":
            out.append(f"failover alarm {name} has insufficient data: it cannot go into ALARM")
    return out


def _probe_reasons(topo: Topology) -> list[str]:
    probe = topo.cluster.probe
    primary = topo.primary
    if probe is None or primary is None:
        return []
    out = []
    for replica in _serving(topo, primary):
        reading = (topo.recent_lag or {}).get(replica.id)
        if reading is None or reading.source != "SQL probe":
            out.append(
                f"no SQL probe reading of {replica.id} within probe.max_age_seconds ({probe.max_age_seconds}s): "
                "a failover would rank candidates by CloudWatch's ReplicaLag alone"
            )
    return out


def _serving(topo: Topology, primary: Instance) -> list[Instance]:
    return [r for r in topo.replicas_of(primary.id) if r.status == AVAILABLE and r.cluster_tag == topo.cluster.name]
