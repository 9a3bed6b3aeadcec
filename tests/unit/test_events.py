"""The three alarm shapes parse to the same trigger; anything else is a clear InvalidEventError."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from rds_ha.core.errors import InvalidEventError
from rds_ha.events import parse_alarm_event

EVENTS = Path(__file__).resolve().parents[2] / "events"


@pytest.mark.parametrize("name", ["alarm-eventbridge", "alarm-sns", "alarm-lambda-action"])
def test_samples_parse_to_the_same_transition(name: str) -> None:
    (trigger,) = parse_alarm_event(json.loads((EVENTS / f"{name}.json").read_text()))
    assert trigger.alarm_name == "orders-primary-down"
    assert trigger.is_alarm_transition
    assert trigger.state_time == datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    assert trigger.instance == "orders-db"
    assert trigger.region == "us-east-1"
    assert trigger.idempotency_key() == {"alarm": "orders-primary-down", "state": "ALARM", "at": "2026-11-23T10:00:00.000+00:00"}


def test_ok_transition_is_not_an_alarm_transition() -> None:
    (trigger,) = parse_alarm_event(json.loads((EVENTS / "alarm-eventbridge-ok.json").read_text()))
    assert trigger.state == "OK" and not trigger.is_alarm_transition


def _sample(name: str) -> dict:  # type: ignore[type-arg]
    return json.loads((EVENTS / f"{name}.json").read_text())


def _without(event: dict, *path: str) -> dict:  # type: ignore[type-arg]
    node = event
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return event


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ([], "event must be a JSON object"),
        ({"hello": "world"}, "not an alarm event"),
        ({**_sample("alarm-eventbridge"), "detail-type": "EC2 Instance State-change Notification"}, "is not a 'CloudWatch Alarm State Change'"),
        (_without(_sample("alarm-eventbridge"), "detail", "alarmName"), "malformed EventBridge alarm event: alarmName: Field required"),
        (_without(_sample("alarm-lambda-action"), "alarmData", "state", "value"), "malformed Lambda-action alarm event: alarmData.state.value: Field required"),
        (_without(_sample("alarm-eventbridge"), "time"), "malformed EventBridge alarm event: time: Field required"),
        ({"Records": [{"EventSource": "aws:sns"}]}, "malformed SNS alarm event"),
        ({"Records": []}, "no records"),
    ],
)
def test_malformed_events_are_clear_errors(event: object, expected: str) -> None:
    with pytest.raises(InvalidEventError) as exc:
        parse_alarm_event(event)
    assert expected in str(exc.value)


def test_sns_message_that_is_not_an_alarm() -> None:
    event = _sample("alarm-sns")
    event["Records"][0]["Sns"]["Message"] = "hello"
    with pytest.raises(InvalidEventError, match="malformed SNS alarm event"):
        parse_alarm_event(event)
    event["Records"][0]["Sns"]["Message"] = json.dumps({"AlarmName": "x", "NewStateValue": "MAYBE", "StateChangeTime": "2026-11-23T10:00:00.000+0000"})
    with pytest.raises(InvalidEventError, match="NewStateValue"):
        parse_alarm_event(event)


def test_wrong_types_are_rejected() -> None:
    event = _sample("alarm-eventbridge")
    event["detail"]["state"]["timestamp"] = 12
    event["detail"]["alarmName"] = ["list"]
    with pytest.raises(InvalidEventError, match="alarmName"):
        parse_alarm_event(event)


def test_samples_in_events_folder_are_what_the_generator_makes() -> None:
    from rds_ha.local.samples import alarm_event

    at = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    for shape in ("eventbridge", "sns", "lambda-action"):
        assert json.loads((EVENTS / f"alarm-{shape}.json").read_text()) == alarm_event(shape, at)


def test_rds_event_samples_parse_to_their_kind() -> None:
    from rds_ha.events import parse_rds_event

    kinds = {p.name: parse_rds_event(json.loads(p.read_text())).kind for p in sorted((Path(__file__).resolve().parents[2] / "events").glob("rds-*.json"))}
    assert kinds == {
        "rds-created.json": "created",
        "rds-deleted.json": "deleted",
        "rds-failover.json": "failover",
        "rds-replication-resumed.json": "replication_resumed",
        "rds-replication-stopped.json": "replication_stopped",
        "rds-started.json": "started",
        "rds-stopped.json": "stopped",
    }


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"detail-type": "RDS DB Snapshot Event"}, "is not an 'RDS DB Instance Event'"),
        ({"detail": {"SourceType": "DB_CLUSTER"}}, "malformed RDS event: detail.SourceType"),
        ({"detail": {"EventID": "0049"}}, "malformed RDS event: detail.EventID"),
        ({"detail": {"SourceIdentifier": "other-db"}}, "does not name other-db"),
        ({"detail": {"Date": "yesterday"}}, "malformed RDS event: detail.Date"),
    ],
)
def test_malformed_rds_events_say_what_is_wrong(change: dict[str, Any], expected: str) -> None:
    from rds_ha.events import parse_rds_event
    from rds_ha.local.samples import rds_event

    event = rds_event("RDS-EVENT-0045", "orders-db-r1", datetime(2026, 11, 23, tzinfo=UTC))
    for key, value in change.items():
        if isinstance(value, dict):
            event[key].update(value)
        else:
            event[key] = value
    with pytest.raises(InvalidEventError) as exc:
        parse_rds_event(event)
    assert expected in str(exc.value)
