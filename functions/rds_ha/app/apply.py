"""`rds-ha apply`: check each cluster of a file against AWS, then store them all; nothing is stored if
any is wrong (every problem is listed, one line each).

rds-ha's IAM policy lets it act only on instances tagged `rds-ha:cluster`: the primary and its replicas
must carry the tag (`tag_members` adds it where it is missing).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .. import TAG_CLUSTER
from ..adapters.aws import caller_account
from ..core.clock import utc
from ..core.config import ClusterConfig, claim_conflicts, foreign_accounts, outside_zone
from ..core.errors import ConfigError
from ..core.models import AlarmStatus, ClusterState, Instance
from ..core.planner import no_replicas_of
from . import preflight
from .deps import Deps

# RDS Proxy's EngineFamily for each RDS engine (MariaDB is served as MYSQL).
ENGINE_FAMILY = {"postgres": "POSTGRESQL", "mysql": "MYSQL", "mariadb": "MYSQL"}


@dataclass
class _Check:
    """What checking a file found: problems (nothing is stored), warnings, and members to tag."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    untagged: list[tuple[ClusterConfig, Instance]] = field(default_factory=list)
    # (region, instance) -> the file's cluster it belongs to. A cluster applied before has tagged its
    # members, so the tag check catches an instance it already owns.
    member_of: dict[tuple[str, str], str] = field(default_factory=dict)


def _primary_problems(cfg: ClusterConfig, primary: Instance, instances: list[Instance], found: _Check) -> None:
    refused = no_replicas_of(primary)
    if refused:
        found.warnings.append(f"cluster {cfg.name}: warning: {refused}; a failover still promotes a replica, but no replica can be rebuilt or added")
    if primary.subnet_group:
        found.problems += [
            f"cluster {cfg.name}: {primary.id} is in a VPC (subnet group {primary.subnet_group}): replicas.cross_region[{i}] ({c.region}) "
            f"needs subnet_group, a DB subnet group of {c.region} (without one RDS puts the replica in no VPC)"
            for i, c in enumerate(cfg.replicas.cross_region)
            if not c.subnet_group
        ]
    for inst in [primary, *(i for i in instances if i.source == primary.id)]:
        other = found.member_of.setdefault((cfg.region, inst.id), cfg.name)
        if other != cfg.name:
            found.problems.append(f"cluster {cfg.name}: {inst.id} is already a member of cluster {other}")
        if inst.cluster_tag is None:
            found.untagged.append((cfg, inst))
        elif inst.cluster_tag != cfg.name:
            found.problems.append(f"cluster {cfg.name}: {inst.id} is tagged {TAG_CLUSTER}={inst.cluster_tag}, a member of another cluster")


def _alarm_problems(cfg: ClusterConfig, primary: Instance, alarms: Mapping[str, AlarmStatus], found: _Check) -> None:
    """A failover alarm must exist in CloudWatch (one that does not is a failure never seen) and should
    watch the primary; an alarm of another role that does not exist is warned about (it never acts)."""
    for name, role in cfg.alarms.roles():
        alarm = alarms.get(name)
        if alarm is None and role == "failover":
            found.problems.append(
                f"cluster {cfg.name}: alarms.failover: {name} not found in CloudWatch in {cfg.region} "
                f"(create it first: rds-ha alarms render {cfg.name} -f FILE prints infra/protection.yaml's parameters; or leave it out)"
            )
        elif alarm is None:
            found.warnings.append(f"cluster {cfg.name}: warning: alarms.{role}: {name} not found in CloudWatch in {cfg.region}: it acts once it exists")
        if alarm is None:
            continue
        watched = alarm.dimensions.get("DBInstanceIdentifier")
        if role == "failover" and watched is not None and watched != primary.id:
            found.warnings.append(f"cluster {cfg.name}: warning: failover alarm {name} watches {watched}, not the primary {primary.id}")


class Apply:
    def __init__(self, deps: Deps) -> None:
        self.d = deps

    def apply(self, clusters: list[ClusterConfig], source: str, applied_by: str, tag_members: bool = False) -> list[str]:
        """Check, then (only if nothing is wrong) tag what lacks the tag and store; the notes to show."""
        states = {cfg.name: self.d.table.get_state(cfg.name) for cfg in clusters}
        applied = {c.name: c for c in self.d.table.configs()}
        found = self._check(clusters, states, applied)
        if found.untagged and not tag_members:
            names = ", ".join(i.id for _, i in found.untagged)
            found.problems.append(f"{names} lack the tag {TAG_CLUSTER} (rds-ha may act only on tagged instances); add it, or apply with --tag-members")
        if found.problems:
            raise ConfigError(found.problems, source)
        notes = found.warnings + found.notes
        for cfg, inst in found.untagged:
            self.d.rds.add_tags(cfg.region, inst.arn, {TAG_CLUSTER: cfg.name})
            notes.append(f"tagged {inst.id} {TAG_CLUSTER}={cfg.name}")
        for cfg in clusters:
            notes += self._store(cfg, states[cfg.name], applied.get(cfg.name), source, applied_by)
        return notes

    def _check(self, clusters: list[ClusterConfig], states: dict[str, ClusterState | None], applied: dict[str, ClusterConfig]) -> _Check:
        found = _Check(problems=claim_conflicts(clusters, applied.values()))
        described: dict[str, list[Instance]] = {}
        alarms: dict[str, dict[str, AlarmStatus]] = {}
        account = caller_account(self.d.clients)
        for cfg in clusters:
            found.problems += foreign_accounts(cfg, account)
            state = states[cfg.name]
            primary_id = state.primary if state else cfg.primary
            if cfg.region not in described:  # one sweep per region (setdefault would describe once per cluster)
                described[cfg.region] = self.d.rds.describe_all(cfg.region)
                names = [a for c in clusters if c.region == cfg.region for a, _ in c.alarms.roles()]
                alarms[cfg.region] = self.d.cloudwatch.alarms(cfg.region, names) if names else {}
            instances = described[cfg.region]
            primary = next((i for i in instances if i.id == primary_id), None)
            if primary is None:
                found.problems.append(f"cluster {cfg.name}: primary {primary_id} not found in {cfg.region}")
            elif primary.is_replica:
                found.problems.append(f"cluster {cfg.name}: primary {primary_id} is a read replica of {primary.source}")
            else:
                _primary_problems(cfg, primary, instances, found)
                found.warnings += [f"cluster {cfg.name}: warning: {w}" for w in preflight.warnings(self.d, cfg, primary)]
                self._proxy_problems(cfg, primary, found)
                _alarm_problems(cfg, primary, alarms[cfg.region], found)
            if state is not None and state.primary != cfg.primary and not any(i.id == cfg.primary for i in instances):
                found.problems.append(
                    f"cluster {cfg.name}: primary {cfg.primary} not found in {cfg.region} (rds-ha's primary is {state.primary}: name it in the file)"
                )
            zone = self.d.route53.zone_name(cfg.dns.zone_id)
            found.problems += [f"cluster {cfg.name}: hosted zone {cfg.dns.zone_id} not found"] if zone is None else outside_zone(cfg, zone)
        return found

    def _proxy_problems(self, cfg: ClusterConfig, primary: Instance, found: _Check) -> None:
        """The proxy (cluster.proxy) must exist in the cluster's region, serve the primary's engine family, and
        its target group must target the primary alone: rds-ha moves a target group, it does not set one up."""
        if cfg.proxy is None:
            return
        name, group = cfg.proxy.name, cfg.proxy.target_group
        info = self.d.proxies.describe(cfg.region, name, group)
        if info is None:
            found.problems.append(f"cluster {cfg.name}: proxy {name} not found in {cfg.region}")
            return
        family = ENGINE_FAMILY.get(primary.engine.split("-")[0], primary.engine.upper())
        if info.engine_family != family:
            found.problems.append(f"cluster {cfg.name}: proxy {name} is for {info.engine_family}, and {primary.id} runs {primary.engine} ({family})")
        if info.target_group_arn is None:
            found.problems.append(f"cluster {cfg.name}: proxy {name} has no target group {group}")
            return
        targets = [t.instance for t in self.d.proxies.targets(cfg.region, name, group)]
        if targets != [primary.id]:
            now = f"targets {', '.join(targets)}" if targets else "targets nothing"
            found.problems.append(
                f"cluster {cfg.name}: proxy {name} ({group}) {now}, not the primary {primary.id} alone: register it first "
                f"(aws rds register-db-proxy-targets --db-proxy-name {name} --target-group-name {group} --db-instance-identifiers {primary.id})"
            )
        found.notes.append(f"{cfg.name}: proxy {name} follows the primary; the stack's DBProxyArns must hold {info.arn},{info.target_group_arn}")

    def _store(self, cfg: ClusterConfig, state: ClusterState | None, before: ClusterConfig | None, source: str, applied_by: str) -> list[str]:
        notes = []
        if state is None:
            self.d.table.put_state(ClusterState(cluster=cfg.name, primary=cfg.primary))
        elif state.primary != cfg.primary:
            since = f"rds-ha failed over to it at {utc(state.last_failover_at)}" if state.last_failover_at else "as first applied"
            notes.append(
                f"{cfg.name}: the file names {cfg.primary} as primary, but the primary is {state.primary} ({since}); keeping {state.primary} (update the file)"
            )
        if state is not None and state.multi_az is not None:
            if before is not None and before.multi_az != cfg.multi_az:
                # The file's multi_az changed: it is the newest word, and replaces the alarm's or operator's choice.
                self.d.table.put_state(state.model_copy(update={"multi_az": None}))
                notes.append(f"{cfg.name}: multi_az is now the file's ({cfg.multi_az}); the choice made by {state.multi_az.by} is dropped")
            else:
                how = "on" if state.multi_az.enabled else "off"
                notes.append(f"{cfg.name}: Multi-AZ stays {how} as chosen by {state.multi_az.by} until the file changes multi_az")
        now = self.d.clock.now()
        self.d.table.put_config(cfg, applied_by, now)
        self.d.recorder.history(cfg.name, "config_applied", f"configuration applied from {source} by {applied_by}")
        return notes
