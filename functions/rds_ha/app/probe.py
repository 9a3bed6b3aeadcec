"""The SQL health probe: sample every probed cluster every `probe.interval_seconds`, judge, publish.

Per invocation it reads the configs, one DescribeDBInstances sweep per region and each cluster's
state (who the primary is), then loops: each tick checks every instance of every cluster in
parallel, each check bounded by its timeouts (and by a deadline on top, should a driver ignore
them), and publishes one PutMetricData per cluster. A cluster whose primary is not healthy, or whose
replica is no longer one, is described again before the next tick (a failover changes its roles).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from ..adapters.credentials import CredentialSource
from ..core.clock import Clock
from ..core.config import ClusterConfig
from ..core.errors import AwsError, ClusterNotFoundError
from ..core.models import ClusterState, Instance
from ..events import ProbeVerdict, probe_verdict_event
from ..observability import logger
from ..probe.engines import Engine, engine_for
from ..probe.judge import judge
from ..probe.model import Credentials, EngineError, Outcome, Sample
from .deps import Deps
from .snapshot import members

# Checks run in parallel across clusters; a check never outlives its timeouts by much.
MAX_WORKERS = 32


@dataclass
class Targets:
    cfg: ClusterConfig
    region: str
    engine: Engine | None
    primary: Instance | None
    replicas: list[Instance] = field(default_factory=list)
    stale: bool = False


class HealthProbe:
    def __init__(
        self,
        deps: Deps,
        endpoints: Mapping[str, tuple[str, int]] | None = None,
        publish: bool = True,
        trigger: Callable[[dict[str, Any]], None] | None = None,
        reach: Callable[[], str | None] | None = None,
    ) -> None:
        """`endpoints` replaces RDS's endpoint of named instances (an SSH tunnel, a local test server);
        `trigger` sends a confirmed verdict to FailoverFunction (probe.direct_failover; None: metrics only);
        `reach` says whether the trigger would get through (None: it would; else why not)."""
        self.d = deps
        self.trigger = trigger
        self.reach = reach
        # Clusters whose confirmed verdict on this primary went out (a failed send is tried again next sample).
        self._sent: dict[str, str] = {}
        # Per cluster: the primary the last samples judged, and how many in a row confirmed it down.
        self._confirmed: dict[str, tuple[str, int]] = {}
        self.credentials = CredentialSource(deps.clients)
        self.endpoints = dict(endpoints or {})
        self.publish = publish
        self._pool = ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="probe")

    @property
    def clock(self) -> Clock:
        return self.d.clock

    # -- what to probe ----------------------------------------------------------------------------
    def configs(self, names: list[str] | None = None) -> list[ClusterConfig]:
        configs = [c for c in self.d.table.configs() if c.probe is not None]
        if names:
            unknown = set(names) - {c.name for c in configs}
            if unknown:
                raise ClusterNotFoundError(f"not probed (no such cluster, or no probe section in its config): {', '.join(sorted(unknown))}")
            configs = [c for c in configs if c.name in names]
        return configs

    def targets(self, configs: list[ClusterConfig]) -> list[Targets]:
        sweeps = {region: self.d.rds.describe_all(region) for region in sorted({r for c in configs for r in c.regions})}
        return [self._targets(cfg, [i for r in cfg.regions for i in sweeps[r]]) for cfg in configs]

    def _targets(self, cfg: ClusterConfig, described: list[Instance]) -> Targets:
        state = self.d.table.get_state(cfg.name) or ClusterState(cluster=cfg.name, primary=cfg.primary)
        found = members(cfg, state, described)
        primary = found.get(state.primary)
        engine = engine_for(primary.engine) if primary is not None else None
        replicas = sorted((i for i in found.values() if i.source == state.primary), key=lambda i: i.id)
        return Targets(cfg, primary.region if primary is not None else cfg.region, engine, primary, replicas)

    # -- one tick ------------------------------------------------------------------------------------
    def _endpoint(self, inst: Instance) -> tuple[str, int] | None:
        if inst.id in self.endpoints:
            return self.endpoints[inst.id]
        return (inst.endpoint, inst.port or 0) if inst.endpoint else None

    def _check(self, t: Targets, inst: Instance, role: str, where: tuple[str, int], creds: Credentials) -> Outcome:
        """One instance's check, in a worker thread: database I/O only (AWS calls stay on the caller's thread)."""
        started = time.monotonic()
        assert t.cfg.probe is not None and t.engine is not None
        try:
            check = t.engine.primary if role == "primary" else t.engine.replica
            result = check(where[0], where[1], creds, t.cfg.probe)
        except EngineError as exc:
            return Outcome(inst.id, round(time.monotonic() - started, 3), error=str(exc), error_kind=exc.kind)
        seconds = round(time.monotonic() - started, 3)
        return Outcome(inst.id, seconds, primary=result) if role == "primary" else Outcome(inst.id, seconds, replica=result)

    def _run_checks(self, work: list[tuple[Targets, Instance, str]], refresh: bool) -> dict[str, Outcome]:
        """Check these instances at once, each within its budget; credentials are read here first."""
        jobs: dict[str, Future[Outcome]] = {}
        out: dict[str, Outcome] = {}
        budget = 0.0
        for t, inst, role in work:
            assert t.cfg.probe is not None
            where = self._endpoint(inst)
            if where is None:
                out[inst.id] = Outcome(inst.id, 0.0, error=f"no endpoint yet (status {inst.status})", error_kind="down")
                continue
            try:
                creds = self.credentials.get(t.cfg.probe, inst.region, where[0], where[1], refresh=refresh)
            except AwsError as exc:
                out[inst.id] = Outcome(inst.id, 0.0, error=str(exc), error_kind="config")
                continue
            budget = max(budget, t.cfg.probe.budget_seconds)
            jobs[inst.id] = self._pool.submit(self._check, t, inst, role, where, creds)
        wait(jobs.values(), timeout=budget)
        for iid, fut in jobs.items():
            # A driver that ignored its timeouts: the sample does not wait for it (the thread ends on its own).
            out[iid] = fut.result() if fut.done() else Outcome(iid, budget, error=f"no answer within {budget:g}s", error_kind="down")
        return out

    def sample(self, targets: list[Targets]) -> list[Sample]:
        """Check every instance of every cluster at once; judge each cluster; publish its metrics."""
        at = self.d.clock.now()
        work = [
            (t, inst, role)
            for t in targets
            if t.engine and t.primary and t.cfg.probe
            for inst, role in [(t.primary, "primary"), *((r, "replica") for r in t.replicas)]
        ]
        outcomes = self._run_checks(work, refresh=False)
        # A rotated secret: read it again, and check again, the instances whose login failed.
        again = [w for w in work if outcomes[w[1].id].error_kind == "auth" and w[0].cfg.probe and w[0].cfg.probe.secret_arn]
        if again:
            outcomes.update(self._run_checks(again, refresh=True))
        samples = []
        for t in targets:
            if t.primary is None or t.engine is None:
                why = f"primary {t.cfg.primary} not found" if t.primary is None else f"engine {t.primary.engine} is not probed"
                logger.warning(f"probe {t.cfg.name}: {why}")
                continue
            silence = t.cfg.probe.replica_silence_seconds if t.cfg.probe else 30
            sample = self._under_own_fence(t, judge(t.cfg.name, at, t.engine.name, outcomes[t.primary.id], [outcomes[r.id] for r in t.replicas], silence))
            # An unhealthy primary (a failover may be under way) or a replica that is no longer one: look
            # again before the next tick (one describe per region for all such clusters), so the probe
            # follows a new primary within a tick instead of reporting the old one until the next minute.
            t.stale = sample.primary_healthy is not True
            t.stale |= any(o.replica is not None and not o.replica.replicating for o in sample.outcomes)
            self._report(t, sample)
            self._witnessed(t.cfg, sample)
            samples.append(sample)
        return samples

    def _under_own_fence(self, t: Targets, sample: Sample) -> Sample:
        """A primary that answers read-only while the cluster's own switchover freezes its writes (the workflow's
        write fence holds on it) is doing what it was asked: healthy (its alarm stays OK, nobody is paged, no
        FailoverFunction invoke), said as such. The state is read only then (one GetItem)."""
        answered = any(o.instance == sample.primary and o.answered and o.primary is not None for o in sample.outcomes)
        if sample.primary_healthy is not False or not answered:
            return sample
        try:
            state = self.d.table.get_state(t.cfg.name)
        except AwsError as exc:
            logger.warning(f"probe {t.cfg.name}: the state not read to tell a fence from a read-only primary: {exc}")
            return sample
        wf = state.workflow if state is not None else None
        if wf is None or wf.fence is None or not wf.fence.holding or wf.fence.instance != sample.primary:
            return sample
        reason = (
            f"answers, read-only under the cluster's own switchover fence ({wf.fence.parameter} since {wf.fence.requested_at.isoformat(timespec='seconds')})"
        )
        return replace(sample, primary_healthy=True, primary_reason=reason)

    def _witnessed(self, cfg: ClusterConfig, sample: Sample) -> None:
        """The direct path: once probe.confirm_samples samples in a row confirm the primary down (its replicas
        lost it too), send the verdict to FailoverFunction, once; the alarm stays the backstop."""
        probe = cfg.probe
        if probe is None or not probe.direct_failover or self.trigger is None:
            return
        primary, count = self._confirmed.get(cfg.name, (sample.primary, 0))
        if not sample.confirmed_down:
            count = 0
            self._sent.pop(cfg.name, None)
        else:
            count = count + 1 if primary == sample.primary else 1
        self._confirmed[cfg.name] = (sample.primary, count)
        if count < probe.confirm_samples or self._sent.get(cfg.name) == sample.primary:
            return
        verdict = ProbeVerdict(cluster=cfg.name, primary=sample.primary, at=sample.at, samples=count, evidence=sample.primary_reason)
        logger.warning(f"{verdict.describe()}: sending it to FailoverFunction", extra={"cluster": cfg.name, "kind": "probe_verdict"})
        try:
            self.trigger(probe_verdict_event(verdict))
        except Exception as exc:  # noqa: BLE001 - the alarm path remains; the probe keeps sampling
            logger.error(f"probe {cfg.name}: the verdict could not be sent ({type(exc).__name__}: {exc}); tried again at the next sample")
            return
        self._sent[cfg.name] = sample.primary

    def check_direct_path(self, targets: list[Targets]) -> str | None:
        """Once per run: would a verdict reach FailoverFunction (an Invoke DryRun)? Published per cluster with
        probe.direct_failover as DirectPathReachable (1/0), which `rds-ha check` reads; None, or why not."""
        direct = [t for t in targets if t.cfg.probe is not None and t.cfg.probe.direct_failover]
        if self.reach is None or not direct:
            return None
        why = self.reach()
        if why is not None:
            logger.error(f"the probe cannot invoke FailoverFunction ({why}): confirmed verdicts would not get through, the alarm path remains")
        for t in direct if self.publish else ():
            try:
                self.d.cloudwatch.put_direct_path(t.region, t.cfg.name, why is None, self.clock.now())
            except AwsError as exc:
                logger.error(f"probe {t.cfg.name}: {exc}")
        return why

    def _report(self, t: Targets, sample: Sample) -> None:
        log = {"cluster": sample.cluster, "primary": sample.primary, "healthy": sample.primary_healthy, "reason": sample.primary_reason}
        log["replicas"] = {v.instance: v.reason for v in sample.replicas}  # type: ignore[assignment]
        if sample.probe_errors:
            logger.error("probe cannot judge (its own credentials or settings)", extra={**log, "errors": list(sample.probe_errors)})
        elif sample.primary_healthy is False:
            logger.warning("primary unhealthy", extra=log)
        else:
            logger.info("probe sample", extra=log)
        if self.publish:
            try:
                self.d.cloudwatch.put_probe_sample(t.region, sample)
            except AwsError as exc:  # the next sample tries again; an alarm sees a gap, not a false value
                logger.error(f"probe {sample.cluster}: {exc}")

    # -- the loop ---------------------------------------------------------------------------------
    def run(self, names: list[str] | None, until: datetime, on_sample: Callable[[list[Sample]], None] | None = None, max_samples: int | None = None) -> int:
        """Sample until `until` (or `max_samples` ticks). Returns the number of ticks."""
        configs = self.configs(names)
        if not configs:
            return 0
        targets = self.targets(configs)
        self.check_direct_path(targets)
        interval = min(c.probe.interval_seconds for c in configs if c.probe is not None)
        ticks = 0
        while True:
            started = self.d.clock.now()
            samples = self.sample(targets)
            ticks += 1
            if on_sample is not None:
                on_sample(samples)
            if max_samples is not None and ticks >= max_samples:
                return ticks
            nxt = started + timedelta(seconds=interval)
            if nxt + timedelta(seconds=max(t.cfg.probe.budget_seconds for t in targets if t.cfg.probe)) > until:
                return ticks
            stale = [t.cfg for t in targets if t.stale]
            if stale:  # roles changed under us (a failover): look again before the next tick
                fresh = {x.cfg.name: x for x in self.targets(stale)}
                targets = [fresh.get(t.cfg.name, t) for t in targets]
            self.d.clock.sleep(max(0.0, (nxt - self.d.clock.now()).total_seconds()))
