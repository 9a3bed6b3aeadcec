"""Cluster configuration: the YAML file applied with `rds-ha apply -f`, validated strictly.

A typo in an HA config is dangerous (a misspelt `max_lag_seconds` silently falling back to a
default could promote a lagging replica), so every model forbids unknown keys and every error
names the key and, for files, the line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError

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
SNS_ARN = r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$"
AZ = r"^[a-z]{2}(-[a-z]+)+-\d[a-z]$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class ReplicasConfig(_Strict):
    min: Annotated[int, Field(ge=0, le=15, strict=True)]
    max: Annotated[int, Field(ge=0, le=15, strict=True)]
    instance_class: Annotated[str, Field(pattern=r"^db\.[a-z0-9]+\.[a-z0-9]+$")] | None = None
    # AZs new replicas are spread over; empty means the AZs the cluster already uses.
    availability_zones: tuple[Annotated[str, Field(pattern=AZ)], ...] = ()

    @model_validator(mode="after")
    def _min_le_max(self) -> ReplicasConfig:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self


class DnsConfig(_Strict):
    zone_id: Annotated[str, Field(pattern=ZONE_ID)]
    writer: Hostname
    reader: Hostname | None = None
    # AWS advises TTL <= 60 s for records that move on failover; Aurora uses 5 s.
    ttl: Annotated[int, Field(ge=0, le=3600, strict=True)] = 5

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
        return self


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
    # How long one run may wait for a promotion before leaving the rest to reconcile.
    wait_seconds: Annotated[int, Field(ge=0, le=840, strict=True)] = 240
    # A Multi-AZ primary fails over to its standby by itself (typically 60-120 s): give RDS this
    # long after the failure before promoting a replica, so the two never race. 0 = don't wait.
    multi_az_grace_seconds: Annotated[int, Field(ge=0, le=1800, strict=True)] = 180


class AlarmsConfig(_Strict):
    failover: tuple[Annotated[str, Field(min_length=1, max_length=255)], ...] = ()


class NotificationsConfig(_Strict):
    sns_topic_arn: Annotated[str, Field(pattern=SNS_ARN)] | None = None


class ClusterConfig(_Strict):
    name: ClusterName
    region: Annotated[str, Field(pattern=REGION)]
    primary: InstanceId
    replicas: ReplicasConfig
    dns: DnsConfig
    failover: FailoverConfig = FailoverConfig()
    alarms: AlarmsConfig = AlarmsConfig()
    notifications: NotificationsConfig = NotificationsConfig()


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
            for alarm in cluster.alarms.failover:
                if alarm in seen and seen[alarm] != cluster.name:
                    raise ValueError(f"alarm {alarm!r} is mapped to both {seen[alarm]!r} and {cluster.name!r}")
                seen[alarm] = cluster.name
        return self


def _loc(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _lines(node: yaml.Node, path: tuple[Any, ...], lines: dict[tuple[Any, ...], int], dups: list[str]) -> None:
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
