"""Alarm events in the three shapes CloudWatch delivers them to Lambda, normalised to one trigger.

- EventBridge "CloudWatch Alarm State Change" (the envelope is Powertools' EventBridgeModel);
- SNS notification whose Message is the alarm as JSON (Powertools' SnsEnvelope);
- the alarm's direct Lambda action (`source: aws.cloudwatch`, `alarmData`).
Anything else, or one of these with missing or mistyped fields, is an InvalidEventError.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any, Literal, cast

from aws_lambda_powertools.utilities.parser import envelopes, parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from .core.config import format_validation_error
from .core.errors import InvalidEventError

ALARM_DETAIL_TYPE = "CloudWatch Alarm State Change"
AlarmStateValue = Literal["OK", "ALARM", "INSUFFICIENT_DATA"]


def _aws_time(value: Any) -> Any:
    # CloudWatch writes "2019-10-02T17:04:40.989+0000": make the offset ISO 8601 ("+00:00").
    if isinstance(value, str):
        return re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", value.strip())
    return value


def _with_offset(value: datetime) -> datetime:
    # AWS always writes an offset ("+0000", "Z"); a time without one is not AWS's, and comparing it with
    # the alarm's own time would fail. Refused like any other malformed field.
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp has no UTC offset (AWS writes e.g. 2019-10-02T17:04:40.989+0000)")
    return value


AwsTime = Annotated[datetime, BeforeValidator(_aws_time), AfterValidator(_with_offset)]


class _Lenient(BaseModel):
    # AWS adds fields over time: accept unknown ones, require the ones we use.
    model_config = ConfigDict(extra="ignore", frozen=True)


class AlarmState(_Lenient):
    value: AlarmStateValue
    reason: str = ""
    timestamp: AwsTime


class MetricId(_Lenient):
    namespace: str | None = None
    name: str | None = None
    dimensions: dict[str, str] = {}


class MetricStat(_Lenient):
    metric: MetricId


class AlarmMetric(_Lenient):
    id: str | None = None
    metricStat: MetricStat | None = None  # noqa: N815 - AWS's field name
    expression: str | None = None


class AlarmConfiguration(_Lenient):
    description: str | None = None
    metrics: list[AlarmMetric] = []


class AlarmDetail(_Lenient):
    """The alarm as EventBridge's `detail` and the direct action's `alarmData` both carry it."""

    alarmName: Annotated[str, Field(min_length=1, max_length=255)]  # noqa: N815
    state: AlarmState
    previousState: AlarmState | None = None  # noqa: N815
    configuration: AlarmConfiguration | None = None


class DirectActionEvent(_Lenient):
    source: Literal["aws.cloudwatch"]
    alarmArn: str  # noqa: N815
    accountId: str | None = None  # noqa: N815
    time: AwsTime | None = None
    region: str
    alarmData: AlarmDetail  # noqa: N815


class SnsDimension(_Lenient):
    name: str
    value: str


class SnsTrigger(_Lenient):
    MetricName: str | None = None
    Namespace: str | None = None
    Dimensions: list[SnsDimension] = []


class SnsAlarmMessage(_Lenient):
    AlarmName: Annotated[str, Field(min_length=1, max_length=255)]
    NewStateValue: AlarmStateValue
    OldStateValue: AlarmStateValue | None = None
    NewStateReason: str = ""
    StateChangeTime: AwsTime
    AlarmArn: str | None = None
    AWSAccountId: str | None = None
    Trigger: SnsTrigger | None = None


class AlarmTrigger(BaseModel):
    """One alarm state transition, whatever shape it came in."""

    model_config = ConfigDict(frozen=True)

    alarm_name: str
    state: AlarmStateValue
    previous_state: AlarmStateValue | None
    state_time: datetime
    reason: str = ""
    region: str | None = None
    dimensions: dict[str, str] = {}
    shape: Literal["eventbridge", "sns", "lambda-action", "reconcile"]

    @property
    def instance(self) -> str | None:
        # AWS/RDS metrics name it DBInstanceIdentifier; the health probe's (namespace rds-ha) "instance".
        return self.dimensions.get("DBInstanceIdentifier") or self.dimensions.get("instance")

    @property
    def is_alarm_transition(self) -> bool:
        return self.state == "ALARM" and self.previous_state != "ALARM"

    def idempotency_key(self) -> dict[str, str]:
        """The same transition delivered twice, in any shape, has the same key."""
        return {"alarm": self.alarm_name, "state": self.state, "at": self.state_time.isoformat(timespec="milliseconds")}

    def describe(self) -> str:
        return f"alarm {self.alarm_name} -> {self.state} ({self.shape})"


def _dimensions(detail: AlarmDetail) -> dict[str, str]:
    out: dict[str, str] = {}
    for metric in detail.configuration.metrics if detail.configuration else []:
        if metric.metricStat is not None:
            out.update(metric.metricStat.metric.dimensions)
    return out


def _from_detail(detail: AlarmDetail, region: str | None, shape: Literal["eventbridge", "lambda-action"]) -> AlarmTrigger:
    return AlarmTrigger(
        alarm_name=detail.alarmName,
        state=detail.state.value,
        previous_state=detail.previousState.value if detail.previousState else None,
        state_time=detail.state.timestamp,
        reason=detail.state.reason,
        region=region,
        dimensions=_dimensions(detail),
        shape=shape,
    )


def _one_line(text: str, limit: int = 300) -> str:
    """Event content in an error or log line: control characters escaped (no forged log lines), bounded."""
    clean = re.sub(r"[\x00-\x1f\x7f]", lambda m: repr(m.group())[1:-1], text)
    return clean if len(clean) <= limit else clean[:limit] + "..."


def _invalid(exc: ValidationError, shape: str, what: str = "alarm event") -> InvalidEventError:
    problems = format_validation_error(exc)
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    return InvalidEventError(f"malformed {shape} {what}: {_one_line(problems[0])}{more}")


def _envelope(event: dict[str, Any], detail_type: str, expected: str, what: str) -> EventBridgeModel:
    """The EventBridge envelope (Powertools' model) of an event that must be a `detail_type`."""
    try:
        envelope = EventBridgeModel.model_validate(event)
    except ValidationError as exc:
        raise _invalid(exc, "EventBridge", what) from exc
    if envelope.detail_type != detail_type:
        raise InvalidEventError(f"EventBridge event of detail-type {_one_line(repr(envelope.detail_type), 100)} is not {expected}")
    return envelope


def parse_alarm_event(event: Any) -> list[AlarmTrigger]:
    """The alarm transitions in `event` (SNS may batch records); InvalidEventError if malformed."""
    if not isinstance(event, dict):
        raise InvalidEventError(f"event must be a JSON object, got {type(event).__name__}")
    if "Records" in event:
        try:
            messages = cast(list[SnsAlarmMessage | None], parse(event=event, model=SnsAlarmMessage, envelope=envelopes.SnsEnvelope))
        except ValidationError as exc:
            raise _invalid(exc, "SNS") from exc
        except (ValueError, TypeError) as exc:
            raise InvalidEventError(f"malformed SNS alarm event: {_one_line(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)}") from exc
        out = []
        for msg in messages:
            assert msg is not None
            region = msg.AlarmArn.split(":")[3] if msg.AlarmArn and msg.AlarmArn.count(":") >= 5 else None
            dims = {d.name: d.value for d in msg.Trigger.Dimensions} if msg.Trigger else {}
            out.append(
                AlarmTrigger(
                    alarm_name=msg.AlarmName,
                    state=msg.NewStateValue,
                    previous_state=msg.OldStateValue,
                    state_time=msg.StateChangeTime,
                    reason=msg.NewStateReason,
                    region=region,
                    dimensions=dims,
                    shape="sns",
                )
            )
        if not out:
            raise InvalidEventError("malformed SNS alarm event: no records")
        return out
    if "detail-type" in event:
        envelope = _envelope(event, ALARM_DETAIL_TYPE, f"a {ALARM_DETAIL_TYPE!r}", "alarm event")
        try:
            detail = AlarmDetail.model_validate(envelope.detail)
        except ValidationError as exc:
            raise _invalid(exc, "EventBridge") from exc
        return [_from_detail(detail, envelope.region, "eventbridge")]
    if "alarmData" in event:
        try:
            direct = DirectActionEvent.model_validate(event)
        except ValidationError as exc:
            raise _invalid(exc, "Lambda-action") from exc
        return [_from_detail(direct.alarmData, direct.region, "lambda-action")]
    keys = _one_line(", ".join(repr(k) for k in sorted(map(str, event))[:8]), 200) or "none"
    raise InvalidEventError(
        f"not an alarm event: expected an EventBridge alarm state change, an SNS notification or an alarm's Lambda action (top-level keys: {keys})"
    )


# The SQL probe's confirmed verdict (probe.direct_failover), sent by HealthProbeFunction to FailoverFunction.
PROBE_VERDICT_SOURCE = "rds-ha.probe"
PROBE_VERDICT_TYPE = "rds-ha Primary Down Confirmed"


class ProbeVerdict(BaseModel):
    """A primary the probe found dead, confirmed by its replicas, over `samples` samples in a row."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    cluster: str = Field(min_length=1, max_length=64)
    primary: str = Field(min_length=1, max_length=63)
    at: AwsTime
    samples: int = Field(ge=1, le=10)
    evidence: str = Field(max_length=2000)

    def describe(self) -> str:
        return f"probe verdict: {self.primary} down at {self.at.isoformat(timespec='seconds')}, {self.samples} sample(s): {self.evidence}"


def is_probe_verdict(event: Any) -> bool:
    return isinstance(event, dict) and event.get("source") == PROBE_VERDICT_SOURCE


def probe_verdict_event(verdict: ProbeVerdict) -> dict[str, Any]:
    return {"source": PROBE_VERDICT_SOURCE, "detail-type": PROBE_VERDICT_TYPE, "detail": verdict.model_dump(mode="json")}


def parse_probe_verdict(event: Any) -> ProbeVerdict:
    if not isinstance(event, dict) or event.get("detail-type") != PROBE_VERDICT_TYPE or not isinstance(event.get("detail"), dict):
        raise InvalidEventError(f"not a probe verdict: expected source {PROBE_VERDICT_SOURCE!r}, detail-type {PROBE_VERDICT_TYPE!r} and a detail object")
    try:
        return ProbeVerdict.model_validate(event["detail"])
    except ValidationError as exc:
        raise _invalid(exc, "probe", "probe verdict") from exc


def load_event_text(text: str) -> Any:
    """JSON text of an event, with one-line errors (the CLI's --event)."""
    try:
        return json.loads(text)
    except RecursionError as exc:
        raise InvalidEventError("event is nested too deeply") from exc
    except ValueError as exc:
        raise InvalidEventError(f"event is not valid JSON: {exc}") from exc


# -- RDS events ------------------------------------------------------------------------------
RDS_DETAIL_TYPE = "RDS DB Instance Event"
# Match on EventID, never on Message (AWS rewords messages). Best effort, unordered, minutes late.
RDS_EVENT_KINDS: dict[str, str] = {
    "RDS-EVENT-0005": "created",
    "RDS-EVENT-0003": "deleted",
    "RDS-EVENT-0087": "stopped",
    "RDS-EVENT-0004": "stopped",  # shutdown
    "RDS-EVENT-0088": "started",
    "RDS-EVENT-0006": "started",  # restarted
    "RDS-EVENT-0013": "failover",  # Multi-AZ failover started
    "RDS-EVENT-0015": "failover",  # Multi-AZ failover complete
    "RDS-EVENT-0049": "failover",  # Multi-AZ failover complete
    "RDS-EVENT-0045": "replication_stopped",
    "RDS-EVENT-0057": "replication_stopped",  # streaming replication terminated
    "RDS-EVENT-0046": "replication_resumed",
    "RDS-EVENT-0202": "creation_failed",
    "RDS-EVENT-0031": "failure",
    "RDS-EVENT-0035": "failure",
    "RDS-EVENT-0036": "failure",
}


class RdsEventDetail(_Lenient):
    """`detail` of an EventBridge "RDS DB Instance Event", as AWS documents it."""

    EventCategories: list[str] = []
    SourceType: Literal["DB_INSTANCE"]
    SourceArn: Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:rds:[a-z0-9-]+:\d{12}:db:[A-Za-z][A-Za-z0-9-]{0,62}$")]
    Date: AwsTime
    Message: str = ""
    SourceIdentifier: Annotated[str, Field(min_length=1, max_length=63)]
    EventID: Annotated[str, Field(pattern=r"^RDS-EVENT-\d{4}$")]
    Tags: dict[str, str] = {}


class RdsEvent(BaseModel):
    """One RDS instance event, reduced to what a DNS and state sync needs."""

    model_config = ConfigDict(frozen=True)

    instance: str
    region: str
    event_id: str
    kind: str | None
    at: datetime
    message: str = ""
    tags: dict[str, str] = {}

    def describe(self) -> str:
        return f"RDS event {self.event_id} ({self.kind or 'not acted on'}) for {self.instance}"


def parse_rds_event(event: Any) -> RdsEvent:
    """An EventBridge RDS DB instance event; InvalidEventError if it is anything else or malformed."""
    if not isinstance(event, dict) or "detail-type" not in event:
        raise InvalidEventError("not an EventBridge event: expected an 'RDS DB Instance Event' with a 'detail-type'")
    envelope = _envelope(event, RDS_DETAIL_TYPE, f"an {RDS_DETAIL_TYPE!r}", "RDS event")
    try:
        detail = RdsEventDetail.model_validate(envelope.detail)
    except ValidationError as exc:
        problems = format_validation_error(exc)
        raise InvalidEventError(f"malformed RDS event: detail.{_one_line(problems[0])}") from exc
    if detail.SourceArn.rsplit(":", 1)[-1] != detail.SourceIdentifier:
        raise InvalidEventError(f"malformed RDS event: SourceArn {_one_line(detail.SourceArn, 100)} does not name {_one_line(detail.SourceIdentifier, 70)}")
    return RdsEvent(
        instance=detail.SourceIdentifier,
        region=detail.SourceArn.split(":")[3],
        event_id=detail.EventID,
        kind=RDS_EVENT_KINDS.get(detail.EventID),
        at=detail.Date,
        message=detail.Message,
        tags=detail.Tags,
    )
