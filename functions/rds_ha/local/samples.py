"""Alarm events in the three shapes AWS delivers and RDS instance events, as documented; events/*.json are made from these."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

ACCOUNT = "123456789012"
# AWS's documentation example signature (not verified by Lambda's SNS trigger).
SIGNATURE = (
    "EXAMPLEpH+DcEwjAPg8O9mY8dReBSwksfg2S7WKQcikcNKWLQjwu6A4VbeS0QHVCkhRS7fUQvi2egU3N858fiTDN6bkkOxYDVrY0Ad8L10Hs3zH81mtnPk5uv"
    "volIC1CXGu43obcgFxeL3khZl8IKvO61GWB6jI9b5+gLPoBc1Q="
)


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}+0000"


def _alarm_data(alarm: str, state: str, previous: str, at: datetime, instance: str) -> dict[str, Any]:
    reason = "Threshold Crossed: 1 out of the last 1 datapoints [0.0] was less than the threshold (1.0)."
    before = at - timedelta(minutes=2)
    return {
        "alarmName": alarm,
        "state": {
            "value": state,
            "reason": reason,
            "reasonData": json.dumps({"version": "1.0", "statistic": "Minimum", "period": 60, "recentDatapoints": [0.0], "threshold": 1.0}),
            "timestamp": _stamp(at),
        },
        "previousState": {
            "value": previous,
            "reason": "Threshold Crossed: 1 out of the last 1 datapoints [1.0] was not less than the threshold (1.0).",
            "timestamp": _stamp(before),
        },
        "configuration": {
            "description": f"{instance} is down: no connections accepted",
            "metrics": [
                {
                    "id": "f2bd1d83-1e4e-4e8a-9c65-1f3f4ea1b7d0",
                    "metricStat": {
                        "metric": {"namespace": "AWS/RDS", "name": "DatabaseConnections", "dimensions": {"DBInstanceIdentifier": instance}},
                        "period": 60,
                        "stat": "Minimum",
                    },
                    "returnData": True,
                }
            ],
        },
    }


def alarm_event(
    shape: str,
    at: datetime,
    *,
    alarm: str = "orders-primary-down",
    state: str = "ALARM",
    previous: str = "OK",
    instance: str = "orders-db",
    region: str = "us-east-1",
) -> dict[str, Any]:
    arn = f"arn:aws:cloudwatch:{region}:{ACCOUNT}:alarm:{alarm}"
    data = _alarm_data(alarm, state, previous, at, instance)
    if shape == "eventbridge":
        return {
            "version": "0",
            "id": "c4c1c1c9-6542-e61b-6ef0-8c4d36933a92",
            "detail-type": "CloudWatch Alarm State Change",
            "source": "aws.cloudwatch",
            "account": ACCOUNT,
            "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": region,
            "resources": [arn],
            "detail": data,
        }
    if shape == "lambda-action":
        return {"source": "aws.cloudwatch", "alarmArn": arn, "accountId": ACCOUNT, "time": _stamp(at), "region": region, "alarmData": data}
    if shape == "sns":
        return _sns_alarm_event(alarm, state, previous, at, instance, region, arn, data)
    raise ValueError(f"unknown alarm event shape {shape!r}")


def _sns_alarm_event(alarm: str, state: str, previous: str, at: datetime, instance: str, region: str, arn: str, data: dict[str, Any]) -> dict[str, Any]:
    """The alarm's SNS notification, as Lambda receives it from the topic."""
    topic = f"arn:aws:sns:{region}:{ACCOUNT}:{alarm}-topic"
    message = {
        "AlarmName": alarm,
        "AlarmDescription": data["configuration"]["description"],
        "AWSAccountId": ACCOUNT,
        "AlarmConfigurationUpdatedTimestamp": _stamp(at - timedelta(days=3)),
        "NewStateValue": state,
        "NewStateReason": data["state"]["reason"],
        "StateChangeTime": _stamp(at),
        "Region": "US East (N. Virginia)",
        "AlarmArn": arn,
        "OldStateValue": previous,
        "OKActions": [],
        "AlarmActions": [topic],
        "InsufficientDataActions": [],
        "Trigger": {
            "MetricName": "DatabaseConnections",
            "Namespace": "AWS/RDS",
            "StatisticType": "Statistic",
            "Statistic": "MINIMUM",
            "Unit": None,
            "Dimensions": [{"value": instance, "name": "DBInstanceIdentifier"}],
            "Period": 60,
            "EvaluationPeriods": 1,
            "DatapointsToAlarm": 1,
            "ComparisonOperator": "LessThanThreshold",
            "Threshold": 1.0,
            "TreatMissingData": "breaching",
            "EvaluateLowSampleCountPercentile": "",
        },
    }
    sub = f"{topic}:2bcfbf39-05c3-41de-beaa-fcfcc21c8f55"
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": sub,
                "Sns": {
                    "Type": "Notification",
                    "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
                    "TopicArn": topic,
                    "Subject": f'{state}: "{alarm}" in US East (N. Virginia)',
                    "Message": json.dumps(message),
                    "Timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z",
                    "SignatureVersion": "1",
                    "Signature": SIGNATURE,
                    "SigningCertUrl": f"https://sns.{region}.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem",
                    "UnsubscribeUrl": f"https://sns.{region}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={sub}",
                    "MessageAttributes": {},
                },
            }
        ]
    }


# Messages as RDS writes them for the events DnsSyncFunction acts on (it matches on EventID only).
RDS_MESSAGES = {
    "RDS-EVENT-0005": ("creation", "DB instance created"),
    "RDS-EVENT-0003": ("deletion", "DB instance deleted"),
    "RDS-EVENT-0087": ("notification", "DB instance stopped"),
    "RDS-EVENT-0088": ("notification", "DB instance started"),
    "RDS-EVENT-0049": ("failover", "Multi-AZ instance failover completed"),
    "RDS-EVENT-0045": ("read replica", "Replication has stopped."),
    "RDS-EVENT-0046": ("read replica", "Replication for the Read Replica resumed."),
}


def rds_event(event_id: str, instance: str, at: datetime, *, region: str = "us-east-1", tags: dict[str, str] | None = None) -> dict[str, Any]:
    """An EventBridge "RDS DB Instance Event" as AWS documents it (with the instance's tags, as RDS now sends)."""
    category, message = RDS_MESSAGES.get(event_id, ("notification", "event"))
    arn = f"arn:aws:rds:{region}:{ACCOUNT}:db:{instance}"
    return {
        "version": "0",
        "id": "68f6e973-1a0c-d37b-f2f2-94a7f62ffd4e",
        "detail-type": "RDS DB Instance Event",
        "source": "aws.rds",
        "account": ACCOUNT,
        "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [arn],
        "detail": {
            "EventCategories": [category],
            "SourceType": "DB_INSTANCE",
            "SourceArn": arn,
            "Date": at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z",
            "Message": message,
            "SourceIdentifier": instance,
            "EventID": event_id,
            "Tags": dict(tags if tags is not None else {"rds-ha:cluster": "orders"}),
        },
    }


def write_samples(folder: str) -> None:
    """Regenerate events/*.json (python -c 'from rds_ha.local.samples import write_samples; write_samples("events")')."""
    from datetime import UTC
    from pathlib import Path

    at = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    out = Path(folder)
    for shape in ("eventbridge", "sns", "lambda-action"):
        (out / f"alarm-{shape}.json").write_text(json.dumps(alarm_event(shape, at), indent=2) + "\n")
    names = {
        "RDS-EVENT-0005": "created",
        "RDS-EVENT-0003": "deleted",
        "RDS-EVENT-0087": "stopped",
        "RDS-EVENT-0088": "started",
        "RDS-EVENT-0049": "failover",
        "RDS-EVENT-0045": "replication-stopped",
        "RDS-EVENT-0046": "replication-resumed",
    }
    for event_id, name in names.items():
        (out / f"rds-{name}.json").write_text(json.dumps(rds_event(event_id, "orders-db-r1", at), indent=2) + "\n")
    for role, alarm in (("scale-out", "orders-replicas-cpu-high"), ("scale-in", "orders-replicas-cpu-low"), ("multi-az-on", "orders-multi-az-on")):
        (out / f"alarm-{role}.json").write_text(json.dumps(alarm_event("eventbridge", at, alarm=alarm, instance="orders-db-r1"), indent=2) + "\n")
    (out / "alarm-eventbridge-ok.json").write_text(
        json.dumps(alarm_event("eventbridge", at + timedelta(minutes=5), state="OK", previous="ALARM"), indent=2) + "\n"
    )
