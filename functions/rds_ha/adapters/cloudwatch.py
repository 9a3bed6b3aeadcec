"""CloudWatch: replica lag over a window, and the current state of alarms."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..core.models import AlarmStatus, LagReading
from .aws import AwsClients, translate

_ERRORS = (ClientError, BotoCoreError)
_MAX_QUERIES = 500  # GetMetricData's limit per call


class CloudWatchAdapter:
    def __init__(self, clients: AwsClients) -> None:
        self._clients = clients

    def replica_lag(self, region: str, instance_ids: Iterable[str], start: datetime, end: datetime) -> dict[str, float | None]:
        """Max of AWS/RDS ReplicaLag (Maximum, 1-minute) per instance in [start, end]; None = no data."""
        seen = self._lag_series(region, instance_ids, start, end)
        # -1 means "replication not active": it wins over any real reading in the window.
        return {iid: (None if not vals else -1.0 if any(v == -1.0 for _, v in vals) else max(v for _, v in vals)) for iid, vals in seen.items()}

    def recent_lag(self, region: str, instance_ids: Iterable[str], start: datetime, end: datetime) -> dict[str, LagReading]:
        """The latest ReplicaLag datapoint in [start, end] per instance that has one: one batched call
        (500 instances per GetMetricData) however many clusters the instances belong to."""
        seen = self._lag_series(region, instance_ids, start, end)
        return {iid: LagReading(seconds=v, at=at) for iid, vals in seen.items() if vals for at, v in [max(vals, key=lambda p: p[0])]}

    def _lag_series(self, region: str, instance_ids: Iterable[str], start: datetime, end: datetime) -> dict[str, list[tuple[datetime, float]]]:
        ids = list(dict.fromkeys(instance_ids))
        seen: dict[str, list[tuple[datetime, float]]] = {i: [] for i in ids}
        if not ids:
            return seen
        cw = self._clients.client("cloudwatch", region)
        for offset in range(0, len(ids), _MAX_QUERIES):
            chunk = ids[offset : offset + _MAX_QUERIES]
            queries: list[dict[str, Any]] = [
                {
                    "Id": f"m{n}",
                    "MetricStat": {
                        "Metric": {"Namespace": "AWS/RDS", "MetricName": "ReplicaLag", "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": iid}]},
                        "Period": 60,
                        "Stat": "Maximum",
                    },
                    "ReturnData": True,
                }
                for n, iid in enumerate(chunk)
            ]
            try:
                kwargs: dict[str, Any] = {"MetricDataQueries": queries, "StartTime": start, "EndTime": end}
                while True:
                    resp = cw.get_metric_data(**kwargs)
                    for result in resp.get("MetricDataResults", []):
                        iid = chunk[int(result["Id"][1:])]
                        seen[iid] += [(t, float(v)) for t, v in zip(result.get("Timestamps", []), result.get("Values", []), strict=False)]
                    token = resp.get("NextToken")
                    if not token:
                        break
                    kwargs["NextToken"] = token
            except _ERRORS as exc:
                raise translate(exc, "get ReplicaLag metrics") from exc
        return seen

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
                    out[alarm["AlarmName"]] = AlarmStatus(alarm["AlarmName"], alarm["StateValue"], alarm.get("StateUpdatedTimestamp"), dims)
        except _ERRORS as exc:
            raise translate(exc, "describe alarms") from exc
        return out
