"""CloudWatch: replica lag over a window, and the current state of alarms."""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ..core.models import AlarmStatus, EngineReading, LagReading
from .aws import AwsClients, translate

if TYPE_CHECKING:  # only the probe builds samples: other functions do not import its models
    from ..probe.model import Sample

_ERRORS = (ClientError, BotoCoreError)
_MAX_QUERIES = 500  # GetMetricData's limit per call
_MAX_DATUMS = 1000  # PutMetricData's limit per call
PROBE_NAMESPACE = "rds-ha"
# The probe's answer to "would a verdict reach FailoverFunction?" (its Invoke DryRun), per cluster with probe.direct_failover.
DIRECT_PATH_METRIC = "DirectPathReachable"
# The probe's replica metrics a failover reads (ReplicationBroken comes with every answered check).
PROBE_REPLICA_METRICS = ("ReplicationBroken", "ReplicaLagSeconds", "ReplicaLagBytes")
PROBE_PERIOD = 10  # high-resolution metrics are kept at 10 s or finer for 3 hours


def _engine_readings(seen: Mapping[Any, list[tuple[datetime, float]]], ids: Iterable[str]) -> dict[str, EngineReading]:
    """The SQL probe's latest sample of each instance, from its three metrics' datapoints."""
    out: dict[str, EngineReading] = {}
    for iid in ids:
        latest = {name: max(seen.get((name, iid), []), default=None, key=lambda p: p[0]) for name in PROBE_REPLICA_METRICS}
        broken = latest["ReplicationBroken"]
        if broken is None:  # published with every answered check: no reading without it
            continue
        seconds, lag_bytes = latest["ReplicaLagSeconds"], latest["ReplicaLagBytes"]
        out[iid] = EngineReading(
            at=broken[0],
            broken=broken[1] >= 1,
            lag_seconds=seconds[1] if seconds is not None and seconds[0] == broken[0] else None,
            lag_bytes=lag_bytes[1] if lag_bytes is not None and lag_bytes[0] == broken[0] else None,
        )
    return out


def _rds_lag(iid: str) -> dict[str, Any]:
    return {"Namespace": "AWS/RDS", "MetricName": "ReplicaLag", "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": iid}]}


def _missing_data(alarm: Mapping[str, Any]) -> bool:
    """An alarm in ALARM on missing data: it treats missing data as breaching, and its state reason's data lists no
    recent datapoint (StateReasonData's recentDatapoints, as CloudWatch writes it for a metric alarm's evaluation)."""
    if alarm.get("StateValue") != "ALARM" or alarm.get("TreatMissingData") != "breaching":
        return False
    try:
        data = json.loads(alarm.get("StateReasonData") or "{}")
    except ValueError:
        data = {}
    recent = data.get("recentDatapoints") if isinstance(data, dict) else None
    if isinstance(recent, list):
        return not recent
    return "no datapoints" in str(alarm.get("StateReason", "")).lower()


def _probe_metric(name: str, cluster: str, iid: str) -> dict[str, Any]:
    return {"Namespace": PROBE_NAMESPACE, "MetricName": name, "Dimensions": [{"Name": "cluster", "Value": cluster}, {"Name": "instance", "Value": iid}]}


# What DescribeAlarms returns that PutMetricAlarm takes back unchanged (Tags are not returned: an update keeps them).
_ALARM_SETTINGS = (
    "AlarmName",
    "AlarmDescription",
    "ActionsEnabled",
    "OKActions",
    "AlarmActions",
    "InsufficientDataActions",
    "MetricName",
    "Namespace",
    "Statistic",
    "ExtendedStatistic",
    "Period",
    "Unit",
    "EvaluationPeriods",
    "DatapointsToAlarm",
    "Threshold",
    "ComparisonOperator",
    "TreatMissingData",
    "EvaluateLowSampleCountPercentile",
    "ThresholdMetricId",
)


def _swap(dimensions: list[dict[str, str]], old: str, new: str) -> tuple[list[dict[str, str]], bool]:
    out = [{"Name": d["Name"], "Value": new if d["Name"] == "DBInstanceIdentifier" and d["Value"] == old else d["Value"]} for d in dimensions]
    return out, out != [{"Name": d["Name"], "Value": d["Value"]} for d in dimensions]


def _alarm_as_put(alarm: Mapping[str, Any], old: str, new: str) -> tuple[dict[str, Any], bool]:
    """PutMetricAlarm's arguments re-creating `alarm` with `old` replaced by `new`, and whether anything changed."""
    put = {k: alarm[k] for k in _ALARM_SETTINGS if alarm.get(k) not in (None, [], "")}
    changed = False
    if alarm.get("Dimensions"):
        put["Dimensions"], changed = _swap(alarm["Dimensions"], old, new)
    metrics = []
    for query in alarm.get("Metrics", []):
        query = {k: v for k, v in query.items() if v is not None}
        stat = query.get("MetricStat")
        if stat is not None:
            dims, moved = _swap(stat["Metric"].get("Dimensions", []), old, new)
            query = {**query, "MetricStat": {**stat, "Metric": {**stat["Metric"], "Dimensions": dims}}}
            changed = changed or moved
        metrics.append(query)
    if metrics:
        put["Metrics"] = metrics
    return put, changed


class CloudWatchAdapter:
    def __init__(self, clients: AwsClients) -> None:
        self._clients = clients

    def failover_metrics(
        self, region: str, probe_cluster: str | None, instance_ids: Iterable[str], start: datetime, failure: datetime, end: datetime
    ) -> tuple[dict[str, float | None], dict[str, EngineReading]]:
        """What a failover decision reads, in one batched call: the max ReplicaLag of each replica over
        [start, failure], and (`probe_cluster` given) the SQL probe's latest reading of each up to `end`
        (a replica keeps replaying what it received after its source fails)."""
        ids = list(dict.fromkeys(instance_ids))
        queries = [(("lag", iid), _rds_lag(iid), 60) for iid in ids]
        if probe_cluster is not None:
            queries += [((name, iid), _probe_metric(name, probe_cluster, iid), PROBE_PERIOD) for iid in ids for name in PROBE_REPLICA_METRICS]
        # EndTime is exclusive: a period past `end` keeps a sample taken at `end` itself.
        seen = self._series(region, queries, start, max(end, failure) + timedelta(seconds=PROBE_PERIOD), "get ReplicaLag metrics")
        lag: dict[str, float | None] = {}
        for iid in ids:
            vals = [v for at, v in seen[("lag", iid)] if at <= failure]
            # -1 means "replication not active": it wins over any real reading in the window.
            lag[iid] = None if not vals else -1.0 if any(v == -1.0 for v in vals) else max(vals)
        return lag, _engine_readings(seen, ids)

    def recent_lag(
        self, region: str, instance_ids: Iterable[str], start: datetime, end: datetime, probes: Mapping[str, tuple[str, float]] | None = None
    ) -> tuple[dict[str, LagReading], dict[str, EngineReading]]:
        """The latest lag per instance that has one, in one batched call (500 queries per GetMetricData)
        however many clusters the instances belong to: CloudWatch's ReplicaLag, or for instances in
        `probes` (id -> (cluster, max age in seconds)) the SQL probe's reading when it is that recent.
        Also the probe's readings themselves (a switchover ranks by their bytes behind)."""
        ids = list(dict.fromkeys(instance_ids))
        probes = probes or {}
        queries = [(("lag", iid), _rds_lag(iid), 60) for iid in ids]
        queries += [((name, iid), _probe_metric(name, probes[iid][0], iid), PROBE_PERIOD) for iid in ids if iid in probes for name in PROBE_REPLICA_METRICS]
        seen = self._series(region, queries, start, end + timedelta(seconds=PROBE_PERIOD), "get ReplicaLag metrics")
        engine = _engine_readings(seen, [iid for iid in ids if iid in probes])
        out: dict[str, LagReading] = {}
        for iid in ids:
            reading = engine.get(iid)
            if reading is not None and (end - reading.at).total_seconds() <= probes[iid][1] and (reading.broken or reading.lag_seconds is not None):
                out[iid] = LagReading(seconds=-1.0 if reading.broken else float(reading.lag_seconds or 0.0), at=reading.at, source="SQL probe")
                continue
            vals = [p for p in seen[("lag", iid)] if p[0] <= end]
            if vals:
                at, value = max(vals, key=lambda p: p[0])
                out[iid] = LagReading(seconds=value, at=at)
        return out, engine

    def _series(
        self, region: str, wanted: Sequence[tuple[Hashable, dict[str, Any], int]], start: datetime, end: datetime, what: str
    ) -> dict[Any, list[tuple[datetime, float]]]:
        """Datapoints (Maximum over each period) of each wanted metric, keyed as given; 500 per call."""
        seen: dict[Any, list[tuple[datetime, float]]] = {key: [] for key, _, _ in wanted}
        if not wanted:
            return seen
        cw = self._clients.client("cloudwatch", region)
        for offset in range(0, len(wanted), _MAX_QUERIES):
            chunk = wanted[offset : offset + _MAX_QUERIES]
            queries: list[dict[str, Any]] = [
                {"Id": f"m{n}", "MetricStat": {"Metric": metric, "Period": period, "Stat": "Maximum"}, "ReturnData": True}
                for n, (_, metric, period) in enumerate(chunk)
            ]
            try:
                kwargs: dict[str, Any] = {"MetricDataQueries": queries, "StartTime": start, "EndTime": end}
                while True:
                    resp = cw.get_metric_data(**kwargs)
                    for result in resp.get("MetricDataResults", []):
                        key = chunk[int(result["Id"][1:])][0]
                        seen[key] += [(t, float(v)) for t, v in zip(result.get("Timestamps", []), result.get("Values", []), strict=False)]
                    token = resp.get("NextToken")
                    if not token:
                        break
                    kwargs["NextToken"] = token
            except _ERRORS as exc:
                raise translate(exc, what) from exc
        return seen

    def primary_health_after(self, region: str, cluster: str, instance: str, after: datetime, end: datetime) -> tuple[datetime, bool] | None:
        """The SQL probe's newest PrimaryHealthy sample of `instance` taken after `after` (a verdict's own sample),
        up to `end`: (when, healthy), or None when there is none yet. Its 1-second datapoints, one call."""
        metric = _probe_metric("PrimaryHealthy", cluster, instance)
        # Periods of 1 s (high resolution), each stamped with its start: the probe samples at most once a second,
        # so a later sample's period starts after the verdict's own sample. EndTime is exclusive.
        stop = max(end, after + timedelta(seconds=1)) + timedelta(seconds=1)
        seen = self._series(region, [("health", metric, 1)], after, stop, "get PrimaryHealthy")
        points = sorted(p for p in seen["health"] if p[0] > after)
        return (points[-1][0], points[-1][1] >= 1.0) if points else None

    def put_probe_sample(self, region: str, sample: Sample) -> int:
        """One sample of the SQL probe as high-resolution metrics (namespace rds-ha, dimensions cluster and
        instance): one PutMetricData per cluster per sample. Returns the number of datapoints.

        PrimaryHealthy also goes out with the cluster alone as dimension: "whichever instance is the
        primary now", so an alarm on it follows a failover without being redeployed."""

        def datum(name: str, instance: str | None, value: float, unit: str) -> dict[str, Any]:
            dims = [{"Name": "cluster", "Value": sample.cluster}, *([{"Name": "instance", "Value": instance}] if instance else [])]
            return {"MetricName": name, "Dimensions": dims, "Timestamp": sample.at, "Value": value, "Unit": unit, "StorageResolution": 1}

        data = []
        if sample.primary_healthy is not None:
            healthy = 1.0 if sample.primary_healthy else 0.0
            data += [datum("PrimaryHealthy", sample.primary, healthy, "Count"), datum("PrimaryHealthy", None, healthy, "Count")]
        for outcome in sample.outcomes:
            if outcome.error_kind in ("auth", "config"):
                data.append(datum("ProbeError", outcome.instance, 1.0, "Count"))
        for verdict in sample.replicas:
            if not verdict.answered:
                continue
            data.append(datum("ReplicationBroken", verdict.instance, 1.0 if verdict.broken else 0.0, "Count"))
            if verdict.lag_seconds is not None:
                data.append(datum("ReplicaLagSeconds", verdict.instance, verdict.lag_seconds, "Seconds"))
            if verdict.lag_bytes is not None:
                data.append(datum("ReplicaLagBytes", verdict.instance, verdict.lag_bytes, "Bytes"))
        cw = self._clients.client("cloudwatch", region)
        try:
            for offset in range(0, len(data), _MAX_DATUMS):
                cw.put_metric_data(Namespace=PROBE_NAMESPACE, MetricData=data[offset : offset + _MAX_DATUMS])
        except _ERRORS as exc:
            raise translate(exc, f"put probe metrics of {sample.cluster}") from exc
        return len(data)

    def put_direct_path(self, region: str, cluster: str, reachable: bool, at: datetime) -> None:
        """DirectPathReachable (namespace rds-ha, dimension cluster): 1 when the probe's Invoke DryRun of
        FailoverFunction was accepted, 0 when not."""
        datum = {
            "MetricName": DIRECT_PATH_METRIC,
            "Dimensions": [{"Name": "cluster", "Value": cluster}],
            "Timestamp": at,
            "Value": 1.0 if reachable else 0.0,
            "Unit": "Count",
        }
        try:
            self._clients.client("cloudwatch", region).put_metric_data(Namespace=PROBE_NAMESPACE, MetricData=[datum])
        except _ERRORS as exc:
            raise translate(exc, f"put {DIRECT_PATH_METRIC} of {cluster}") from exc

    def direct_path(self, region: str, cluster: str, start: datetime, end: datetime) -> bool | None:
        """The latest DirectPathReachable of `cluster` in [start, end]: None when the probe published none."""
        query = {
            "Id": "direct",
            "MetricStat": {
                "Metric": {"Namespace": PROBE_NAMESPACE, "MetricName": DIRECT_PATH_METRIC, "Dimensions": [{"Name": "cluster", "Value": cluster}]},
                "Period": 60,
                "Stat": "Minimum",
            },
        }
        try:
            found = self._clients.client("cloudwatch", region).get_metric_data(MetricDataQueries=[query], StartTime=start, EndTime=end + timedelta(seconds=60))
        except _ERRORS as exc:
            raise translate(exc, f"read {DIRECT_PATH_METRIC} of {cluster}") from exc
        values = next((r.get("Values") or [] for r in found.get("MetricDataResults", [])), [])
        return bool(values[0]) if values else None

    def retarget_alarm(self, region: str, name: str, old: str, new: str) -> bool:
        """Point the metric alarm `name` at instance `new` wherever it watches `old` (its DBInstanceIdentifier
        dimension, also inside metric math), keeping its name and every other setting. PutMetricAlarm on an
        existing alarm replaces its configuration and leaves its state as it is (CloudWatch API reference).
        False when there was nothing to change (another instance, no such alarm, a composite alarm)."""
        cw = self._clients.client("cloudwatch", region)
        try:
            found = cw.describe_alarms(AlarmNames=[name], AlarmTypes=["MetricAlarm"]).get("MetricAlarms", [])
            if not found:
                return False
            put, changed = _alarm_as_put(found[0], old, new)
            if changed:
                cw.put_metric_alarm(**put)
            return changed
        except _ERRORS as exc:
            raise translate(exc, f"point alarm {name} at {new}") from exc

    def alarms(self, region: str, names: Iterable[str]) -> dict[str, AlarmStatus]:
        """The named alarms as they are now (state, when it changed, the metric's dimensions)."""
        names = list(dict.fromkeys(names))
        out: dict[str, AlarmStatus] = {}
        cw = self._clients.client("cloudwatch", region)
        try:
            for offset in range(0, len(names), 100):
                resp = cw.describe_alarms(AlarmNames=names[offset : offset + 100], AlarmTypes=["MetricAlarm", "CompositeAlarm"])
                for alarm in resp.get("MetricAlarms", []) + resp.get("CompositeAlarms", []):
                    dims = {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}
                    for query in alarm.get("Metrics", []):  # metric math: the dimensions of each metric it reads
                        metric = (query.get("MetricStat") or {}).get("Metric") or {}
                        dims.update({d["Name"]: d["Value"] for d in metric.get("Dimensions", [])})
                    # StateTransitionedTimestamp: when the state last changed value. StateUpdatedTimestamp also
                    # moves on evaluation updates within the same state: one transition would look like two.
                    at = alarm.get("StateTransitionedTimestamp") or alarm.get("StateUpdatedTimestamp")
                    out[alarm["AlarmName"]] = AlarmStatus(alarm["AlarmName"], alarm["StateValue"], at, dims, _missing_data(alarm))
        except _ERRORS as exc:
            raise translate(exc, "describe alarms") from exc
        return out
