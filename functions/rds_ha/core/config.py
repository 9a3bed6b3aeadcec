"""Cluster configuration: the YAML file applied with `rds-ha apply -f`, validated strictly.

A typo in an HA config is dangerous (a misspelt `max_lag_seconds` silently falling back to a
default could promote a lagging replica), so every model forbids unknown keys and every error
names the key and, for files, the line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError

if TYPE_CHECKING:  # YAML is parsed by the CLI only: Lambda reads configs stored as JSON (cold start)
    import yaml

# RDS: 1-63 letters, digits or hyphens; first a letter; no trailing hyphen nor two in a row.
INSTANCE_ID = r"^[A-Za-z](?!.*--)[A-Za-z0-9-]{0,62}(?<!-)$"
# Cluster names become part of replica identifiers and DynamoDB keys: keep them short and plain.
CLUSTER_NAME = r"^[a-z](?!.*--)[a-z0-9-]{0,29}(?<!-)$"
REGION = r"^[a-z]{2}(-[a-z]+)+-\d$"
HOSTNAME = r"^(?=.{1,253}\.?$)([A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9-]{1,63}\.?$"


def _matching(pattern: str, what: str):  # type: ignore[no-untyped-def]
    """A validator using Python's re (pydantic's Rust regex has no look-around)."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.match(value):
            raise ValueError(f"{value!r} is not a valid {what}")
        return value

    return AfterValidator(check)


InstanceId = Annotated[str, _matching(INSTANCE_ID, "DB instance identifier (1-63 letters, digits, hyphens; starts with a letter)")]
ClusterName = Annotated[str, _matching(CLUSTER_NAME, "cluster name (1-30 lowercase letters, digits, hyphens; starts with a letter)")]
Hostname = Annotated[str, _matching(HOSTNAME, "DNS name")]
ZONE_ID = r"^(/hostedzone/)?[A-Z0-9]{1,32}$"
AZ = r"^[a-z]{2}(-[a-z]+)+-\d[a-z]$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


# FailoverFunction's Timeout (300 s, template.yaml) less the handler's safety margin (20 s, handlers/runtime.py):
# a longer failover.wait_seconds would be cut short silently.
WAIT_SECONDS_MAX = 280


class CrossRegionReplicas(_Strict):
    region: Annotated[str, Field(pattern=REGION)]
    count: Annotated[int, Field(ge=1, le=5, strict=True)] = 1  # AWS can't guarantee more than 5 cross-region replicas
    # Encrypted sources: a KMS key of the destination region (RDS can't use the source region's key there).
    kms_key_id: Annotated[str, Field(min_length=1, max_length=2048)] | None = None
    instance_class: Annotated[str, Field(pattern=r"^db\.[a-z0-9]+\.[a-z0-9]+$")] | None = None
    # A source in a VPC: a DB subnet group of the destination region (else RDS puts the replica in no VPC;
    # rds-ha apply refuses such an entry) and the VPC security groups there (else the VPC's default group).
    subnet_group: Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9 ._-]+$")] | None = None
    security_group_ids: tuple[Annotated[str, Field(pattern=r"^sg-[0-9a-f]{8,17}$")], ...] = ()


class ReplicasConfig(_Strict):
    min: Annotated[int, Field(ge=0, le=15, strict=True)]
    max: Annotated[int, Field(ge=0, le=15, strict=True)]
    instance_class: Annotated[str, Field(pattern=r"^db\.[a-z0-9]+\.[a-z0-9]+$")] | None = None
    # AZs new replicas are spread over; empty means the AZs the cluster already uses.
    availability_zones: tuple[Annotated[str, Field(pattern=AZ)], ...] = ()
    # Per direction: after adding (removing) a replica, the next scale-out (scale-in) waits this long.
    # Scale-out's default covers a replica's creation (10-20 min on AWS), so one alarm does not add several.
    scale_out_cooldown_seconds: Annotated[int, Field(ge=0, le=86400, strict=True)] = 900
    scale_in_cooldown_seconds: Annotated[int, Field(ge=0, le=86400, strict=True)] = 1800
    # Replicas kept in other regions (disaster recovery, local reads there); not counted in min/max.
    cross_region: tuple[CrossRegionReplicas, ...] = ()

    @model_validator(mode="after")
    def _min_le_max(self) -> ReplicasConfig:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        regions = [c.region for c in self.cross_region]
        if len(set(regions)) != len(regions):
            raise ValueError("each region may appear once in cross_region")
        return self


class DnsConfig(_Strict):
    zone_id: Annotated[str, Field(pattern=ZONE_ID)]
    writer: Hostname
    reader: Hostname | None = None
    # AWS advises TTL <= 60 s for records that move on failover; Aurora uses 5 s.
    ttl: Annotated[int, Field(ge=0, le=3600, strict=True)] = 5
    # A replica leaves the reader set when its ReplicaLag exceeds this, and returns only once it is
    # at or below reader_rejoin_lag_seconds (default: half of it), so one near the limit does not flap.
    reader_max_lag_seconds: Annotated[float, Field(ge=0, le=86400)] = 30
    reader_rejoin_lag_seconds: Annotated[float, Field(ge=0, le=86400)] | None = None

    @field_validator("zone_id")
    @classmethod
    def _bare_zone_id(cls, value: str) -> str:
        return value.removeprefix("/hostedzone/")

    @field_validator("writer", "reader")
    @classmethod
    def _fqdn(cls, value: str | None) -> str | None:
        return None if value is None else value.rstrip(".").lower()

    @model_validator(mode="after")
    def _distinct(self) -> DnsConfig:
        if self.reader is not None and self.reader == self.writer:
            raise ValueError("reader and writer must be different names (the writer is a simple CNAME, the reader weighted ones)")
        if self.reader_rejoin_lag_seconds is not None and self.reader_rejoin_lag_seconds > self.reader_max_lag_seconds:
            raise ValueError("reader_rejoin_lag_seconds must not exceed reader_max_lag_seconds (the gap between them is the hysteresis)")
        return self

    @property
    def reader_rejoin_lag(self) -> float:
        return self.reader_max_lag_seconds / 2 if self.reader_rejoin_lag_seconds is None else self.reader_rejoin_lag_seconds


class FailoverConfig(_Strict):
    max_lag_seconds: Annotated[float, Field(ge=0, le=86400)] = 30
    cooldown_seconds: Annotated[int, Field(ge=0, le=7 * 86400, strict=True)] = 600
    # ReplicaLag is judged as its Maximum over this window ending at the failure time.
    lag_window_seconds: Annotated[int, Field(ge=60, le=3600, strict=True)] = 120
    # Tie-break among equally lagged candidates: AZs or regions, most preferred first.
    prefer: tuple[str, ...] = ()
    # Stop the fenced old primary once nothing replicates from it (never delete it).
    stop_old_primary: bool = False
    # Delete replicas left attached to the old primary once replacements are available.
    delete_orphans: bool = True
    # How long one run may wait for a promotion before leaving the rest to reconcile (at most what the
    # function's timeout leaves: WAIT_SECONDS_MAX).
    wait_seconds: Annotated[int, Field(ge=0, le=WAIT_SECONDS_MAX, strict=True)] = 240
    # A Multi-AZ primary fails over to its standby by itself (typically 60-120 s): give RDS this
    # long after the failure before promoting a replica, so the two never race. 0 = don't wait.
    multi_az_grace_seconds: Annotated[int, Field(ge=0, le=1800, strict=True)] = 180
    # A failover not verified by then (promoted, writer INSYNC and answered by Route 53) is aborted,
    # recorded and notified: a human must look.
    deadline_seconds: Annotated[int, Field(ge=300, le=86400, strict=True)] = 3600
    # Promote a replica in another region (the writer record then crosses regions). Off: a regional
    # failover is preferred, and the application's latency to a remote writer is the operator's call.
    allow_cross_region: bool = False
    # Retire (final snapshot, then delete) a fenced old primary this many hours after its fence, from the
    # scheduled reconcile. Unset: kept until an operator runs `rds-ha retire` (the old primary is billed).
    retain_fenced_hours: Annotated[float, Field(ge=1, le=24 * 366)] | None = None


class FenceConfig(_Strict):
    """The write fence of a planned switchover: the old primary is made read-only through its own DB
    parameter group (PostgreSQL default_transaction_read_only, MySQL/MariaDB read_only: dynamic, applied
    without a reboot), its open transactions are ended, and the target is promoted only once it has
    replayed the old primary's final position. Needs SQL reach to both instances from the machine that
    runs `rds-ha switchover`, and, for each instance, a DB parameter group of its own."""

    # The master user (or a login with its privileges): ends other sessions (PostgreSQL rds_superuser's
    # pg_terminate_backend, MySQL/MariaDB mysql.rds_kill) and reads write and replay positions.
    secret_arn: Annotated[str, Field(pattern=SM_ARN)]
    # PostgreSQL: the database to log in to ("postgres" by default).
    database: Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[A-Za-z_][A-Za-z0-9_$-]*$")] | None = None
    tls: Literal["require", "verify-full", "disable"] = "verify-full"
    ca_bundle: Annotated[str, Field(min_length=1, max_length=1024)] | None = None
    connect_timeout_seconds: Annotated[float, Field(ge=0.5, le=30)] = 3
    statement_timeout_seconds: Annotated[float, Field(ge=0.1, le=30)] = 5

    def connection(self) -> ProbeConfig:
        """The connection settings, in the probe's terms (the same drivers connect)."""
        return ProbeConfig(
            secret_arn=self.secret_arn,
            database=self.database,
            tls=self.tls,
            ca_bundle=self.ca_bundle,
            connect_timeout_seconds=self.connect_timeout_seconds,
            statement_timeout_seconds=self.statement_timeout_seconds,
        )


class SwitchoverConfig(_Strict):
    # A planned switchover starts only once the target's ReplicaLag is at most this (near zero: with no
    # fence, writes not yet replayed are lost).
    max_lag_seconds: Annotated[float, Field(ge=0, le=3600)] = 1
    # How long `rds-ha switchover` waits for the target to catch up before refusing; with a fence, also
    # how long writes may stay frozen before the target has replayed the final position (then the fence
    # is lifted and the switchover refused).
    catch_up_seconds: Annotated[int, Field(ge=0, le=3600, strict=True)] = 300
    # Freeze writes on the old primary before promoting (no acknowledged write lost). None: no fence;
    # writes acknowledged by the old primary after the target's last replay are lost.
    fence: FenceConfig | None = None


# Hooks must be named rds-ha-hook-*: the functions' IAM policy allows invoking only those.
HOOK_ARN = r"^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:rds-ha-hook-[A-Za-z0-9_-]{1,52}(:[A-Za-z0-9_$-]{1,128})?$"


class HooksConfig(_Strict):
    # Called (synchronously) before a failover or switchover starts; `{"veto": true, "reason": "..."}` stops it.
    pre_failover: Annotated[str, Field(pattern=HOOK_ARN)] | None = None
    # Called (asynchronously) with the outcome once a failover or switchover completes or is aborted.
    post_failover: Annotated[str, Field(pattern=HOOK_ARN)] | None = None
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 10
    # A hook that does not answer in time (or fails): proceed (recovery is never held hostage) or veto.
    on_timeout: Literal["proceed", "veto"] = "proceed"


AlarmName = Annotated[str, Field(min_length=1, max_length=255)]


AlarmRole = Literal["failover", "scale_out", "scale_in", "multi_az_on", "multi_az_off"]
ALARM_ROLES: tuple[AlarmRole, ...] = ("failover", "scale_out", "scale_in", "multi_az_on", "multi_az_off")


class AlarmsConfig(_Strict):
    failover: tuple[AlarmName, ...] = ()
    # Replica load (CPU, connections): one replica added (removed) per transition into ALARM, and
    # another each cooldown while the alarm stays in ALARM, as Application Auto Scaling does.
    scale_out: tuple[AlarmName, ...] = ()
    scale_in: tuple[AlarmName, ...] = ()
    # Turn the primary's Multi-AZ on (off) when these go into ALARM; the choice is kept as the
    # cluster's desired state until the next one (or `rds-ha multi-az`).
    multi_az_on: tuple[AlarmName, ...] = ()
    multi_az_off: tuple[AlarmName, ...] = ()

    def roles(self) -> list[tuple[str, AlarmRole]]:
        """(alarm, role) for every mapped alarm, failover alarms first."""
        return [(a, role) for role in ALARM_ROLES for a in getattr(self, role)]

    def role_of(self, alarm: str) -> AlarmRole | None:
        """The role of `alarm` in this cluster (an alarm has one role at most), or None."""
        return next((role for name, role in self.roles() if name == alarm), None)

    @model_validator(mode="after")
    def _one_role(self) -> AlarmsConfig:
        seen: dict[str, str] = {}
        for alarm, role in self.roles():
            if alarm in seen and seen[alarm] != role:
                raise ValueError(f"alarm {alarm!r} is mapped to both {seen[alarm]} and {role}")
            seen[alarm] = role
        return self


# RDS's global CA bundle (https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem) in the probe's
# layer: `make probe-ca` puts it in infra/layers/probe/rds_ca/, which Lambda mounts under /opt/python.
RDS_CA_BUNDLE = "/opt/python/rds_ca/global-bundle.pem"
SM_ARN = r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]{1,512}$"


class ProbeConfig(_Strict):
    """The SQL health probe (HealthProbeFunction, in the VPC): how it logs in and how long it waits."""

    # Credentials: a Secrets Manager secret holding {"username", "password"} (RDS-managed secrets do),
    # or IAM database authentication as this user (TLS required). Exactly one of the two.
    secret_arn: Annotated[str, Field(pattern=SM_ARN)] | None = None
    iam_user: Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[A-Za-z_][A-Za-z0-9_$-]*$")] | None = None
    # Database to connect to: PostgreSQL defaults to "postgres"; MySQL/MariaDB need none.
    database: Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[A-Za-z_][A-Za-z0-9_$-]*$")] | None = None
    # One sample of the cluster every interval (the function loops within one invocation).
    interval_seconds: Annotated[int, Field(ge=1, le=60, strict=True)] = 10
    connect_timeout_seconds: Annotated[float, Field(ge=0.5, le=30)] = 3
    statement_timeout_seconds: Annotated[float, Field(ge=0.1, le=30)] = 2
    # verify-full (default): encrypted, and the server's certificate checked against ca_bundle (default: RDS's
    # global CA bundle, shipped in the probe's layer) and its name; require: encrypted, server not verified
    # (anyone on the path can answer as the primary); disable: plain text.
    tls: Literal["require", "verify-full", "disable"] = "verify-full"
    ca_bundle: Annotated[str, Field(min_length=1, max_length=1024)] | None = None

    @property
    def ca_path(self) -> str:
        """The CA bundle verify-full checks the server against."""
        return self.ca_bundle or os.environ.get("RDS_HA_RDS_CA_BUNDLE", RDS_CA_BUNDLE)

    # A failover decision uses a probe reading only if it is at most this old (else CloudWatch's ReplicaLag).
    max_age_seconds: Annotated[int, Field(ge=5, le=600, strict=True)] = 30
    # The direct path: a primary that does not answer, while every replica that answers says it lost it
    # (PostgreSQL: its WAL receiver not streaming, or silent for replica_silence_seconds; MySQL/MariaDB: the
    # I/O thread not running), for confirm_samples samples in a row, makes the probe invoke FailoverFunction
    # itself, without waiting for a CloudWatch alarm (which stays the backstop). False: metrics only.
    direct_failover: bool = True
    confirm_samples: Annotated[int, Field(ge=1, le=10, strict=True)] = 2
    replica_silence_seconds: Annotated[int, Field(ge=5, le=600, strict=True)] = 30

    @model_validator(mode="after")
    def _one_credential(self) -> ProbeConfig:
        if (self.secret_arn is None) == (self.iam_user is None):
            raise ValueError("give exactly one of secret_arn (Secrets Manager) and iam_user (IAM database authentication)")
        if self.iam_user is not None and self.tls == "disable":
            raise ValueError("IAM database authentication needs TLS: tls must be require or verify-full")
        if self.max_age_seconds < 2 * self.interval_seconds:
            raise ValueError(f"max_age_seconds ({self.max_age_seconds}) must be at least twice interval_seconds ({self.interval_seconds})")
        return self

    @property
    def budget_seconds(self) -> float:
        """The most one instance's check may take: connect, then at most two statements."""
        return self.connect_timeout_seconds + 2 * self.statement_timeout_seconds + 1


# A cluster's own topic must be named rds-ha-*: the functions' IAM policy allows publishing only to the
# stack's topic and to those (a page to any other topic would be AccessDenied, at the worst moment).
CLUSTER_TOPIC_ARN = r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:rds-ha-[A-Za-z0-9_-]{1,249}(\.fifo)?$"


# RDS: a proxy's and a target group's names (RegisterDBProxyTargets: 1-63 characters, [a-zA-Z](?:-?[a-zA-Z0-9]+)*).
PROXY_NAME = r"^[a-zA-Z](?:-?[a-zA-Z0-9]+)*$"


class ProxyConfig(_Strict):
    """The cluster's RDS Proxy, in the cluster's region: its target group is kept on the primary (after a
    failover or a switchover, and against drift). Its ARN and the target group's must be in the stack's
    DBProxyArns (rds-ha apply prints them)."""

    name: Annotated[str, Field(min_length=1, max_length=63, pattern=PROXY_NAME)]
    target_group: Annotated[str, Field(min_length=1, max_length=63, pattern=PROXY_NAME)] = "default"


class NotificationsConfig(_Strict):
    sns_topic_arn: (
        Annotated[str, _matching(CLUSTER_TOPIC_ARN, "topic for rds-ha: name it rds-ha-* (IAM lets rds-ha publish only to those and to the stack's topic)")]
        | None
    ) = None


class ClusterConfig(_Strict):
    name: ClusterName
    region: Annotated[str, Field(pattern=REGION)]
    primary: InstanceId
    replicas: ReplicasConfig
    dns: DnsConfig
    failover: FailoverConfig = FailoverConfig()
    switchover: SwitchoverConfig = SwitchoverConfig()
    hooks: HooksConfig = HooksConfig()
    alarms: AlarmsConfig = AlarmsConfig()
    notifications: NotificationsConfig = NotificationsConfig()
    # The SQL health probe; unset = the cluster is judged by RDS's API and CloudWatch metrics only.
    probe: ProbeConfig | None = None
    # Desired Multi-AZ state of the primary, enforced by reconcile and after each failover;
    # unset = rds-ha leaves it alone. An alarm or `rds-ha multi-az` overrides it until the next apply.
    multi_az: bool | None = None
    # RDS Proxy in front of the primary: its target group follows the primary. None: no proxy.
    proxy: ProxyConfig | None = None

    @model_validator(mode="after")
    def _other_regions(self) -> ClusterConfig:
        if any(c.region == self.region for c in self.replicas.cross_region):
            raise ValueError(f"replicas.cross_region names the cluster's own region {self.region}; use replicas.min/max there")
        return self

    @property
    def regions(self) -> list[str]:
        """Where the cluster's instances live: its region first, then the cross-region ones."""
        return [self.region, *(c.region for c in self.replicas.cross_region)]


class ConfigFile(_Strict):
    clusters: Annotated[list[ClusterConfig], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique(self) -> ConfigFile:
        seen: dict[str, str] = {}
        names: set[str] = set()
        for cluster in self.clusters:
            if cluster.name in names:
                raise ValueError(f"cluster name {cluster.name!r} appears twice")
            names.add(cluster.name)
            for alarm, _ in cluster.alarms.roles():
                if alarm in seen and seen[alarm] != cluster.name:
                    raise ValueError(f"alarm {alarm!r} is mapped to both {seen[alarm]!r} and {cluster.name!r}")
                seen[alarm] = cluster.name
        return self


def claim_conflicts(clusters: list[ClusterConfig], applied: Iterable[ClusterConfig]) -> list[str]:
    """What `clusters` claim that another cluster (in the file, or applied before) already claims: a
    writer or reader name (two clusters moving one record point it at two databases) or an alarm (a
    dimensionless one would fail over whichever cluster it is routed to) or a proxy's target group. One
    line each, naming both."""
    replaced = {c.name for c in clusters}
    owners: dict[tuple[str, str], str] = {}
    problems = []
    for cfg in [*(c for c in applied if c.name not in replaced), *clusters]:
        claims = [("record name", n) for n in (cfg.dns.writer, cfg.dns.reader) if n] + [("alarm", a) for a, _ in cfg.alarms.roles()]
        if cfg.proxy is not None:  # one target group on two primaries: each cluster would move it back
            claims.append(("proxy target group", f"{cfg.region}/{cfg.proxy.name}/{cfg.proxy.target_group}"))
        for kind, name in claims:
            owner = owners.setdefault((kind, name), cfg.name)
            if owner != cfg.name:
                problems.append(f"cluster {cfg.name}: {kind} {name} is already cluster {owner}'s")
    return problems


def outside_zone(cfg: ClusterConfig, zone_name: str) -> list[str]:
    """Record names of `cfg` that its hosted zone cannot hold (Route 53 would refuse every change)."""
    zone = zone_name.rstrip(".").lower()
    return [
        f"cluster {cfg.name}: {role} name {name} is not in hosted zone {cfg.dns.zone_id} ({zone})"
        for role, name in (("writer", cfg.dns.writer), ("reader", cfg.dns.reader))
        if name and name != zone and not name.endswith("." + zone)
    ]


def foreign_accounts(cfg: ClusterConfig, account: str) -> list[str]:
    """ARNs of `cfg` in another account than rds-ha's: its IAM policies grant only its own account's hooks,
    topics, secrets and keys, so each would be AccessDenied when it matters."""
    named = [
        ("hooks.pre_failover", cfg.hooks.pre_failover),
        ("hooks.post_failover", cfg.hooks.post_failover),
        ("notifications.sns_topic_arn", cfg.notifications.sns_topic_arn),
        ("probe.secret_arn", cfg.probe.secret_arn if cfg.probe else None),
        *((f"replicas.cross_region[{i}].kms_key_id", c.kms_key_id) for i, c in enumerate(cfg.replicas.cross_region)),
    ]
    return [
        f"cluster {cfg.name}: {key} {arn} is in account {arn.split(':')[4]}, not rds-ha's account {account} (its IAM policies allow only its own)"
        for key, arn in named
        if arn and arn.startswith("arn:") and arn.count(":") >= 5 and arn.split(":")[4] != account
    ]


def _loc(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _lines(node: yaml.Node, path: tuple[Any, ...], lines: dict[tuple[Any, ...], int], dups: list[str]) -> None:
    import yaml

    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                dups.append(f"line {key_node.start_mark.line + 1}: {_loc((*path, key))}: duplicate key")
            seen.add(key)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _lines(value_node, (*path, key), lines, dups)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _lines(item, (*path, index), lines, dups)


def format_validation_error(exc: ValidationError, lines: dict[tuple[Any, ...], int] | None = None) -> list[str]:
    """One line per problem: `line N: clusters[0].dns.ttl: <message>`."""
    problems = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        where = ""
        if lines:
            for end in range(len(loc), -1, -1):
                if loc[:end] in lines:
                    where = f"line {lines[loc[:end]]}: "
                    break
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        problems.append(f"{where}{_loc(loc) or '(top level)'}: {msg}")
    return problems


def parse_config(text: str, source: str = "config") -> ConfigFile:
    """Parse and validate a config file's text; raise ConfigError naming each bad key and its line."""
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise ConfigError([f"{where}not valid YAML ({getattr(exc, 'problem', None) or exc})"], source) from exc
    if node is None or data is None:
        raise ConfigError(["the file is empty; expected a mapping with a 'clusters' list"], source)
    lines: dict[tuple[Any, ...], int] = {}
    dups: list[str] = []
    _lines(node, (), lines, dups)
    if dups:
        raise ConfigError(dups, source)
    if not isinstance(data, dict):
        raise ConfigError(["expected a mapping with a 'clusters' list at the top level"], source)
    try:
        return ConfigFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, lines), source) from exc


def cluster_from_json(text: str, source: str) -> ClusterConfig:
    """Load one cluster's config as stored in the state table."""
    try:
        return ClusterConfig.model_validate_json(text)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc), source) from exc


def replica_name_ok(name: str) -> bool:
    return re.match(INSTANCE_ID, name) is not None
