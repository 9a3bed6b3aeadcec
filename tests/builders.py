"""Small builders: a cluster on moto, alarm events in each of the three shapes."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rds_ha.adapters.aws import AwsClients
from rds_ha.app import App
from rds_ha.app.executor import CrashPoint
from rds_ha.core.config import ClusterConfig, parse_config
from rds_ha.local import samples, sandbox
from rds_ha.local.clock import SimClock
from rds_ha.local.context import LocalContext
from rds_ha.local.moto_fidelity import Fidelity
from rds_ha.local.template import load_template

ROOT = Path(__file__).resolve().parents[1]
REGION = "us-east-1"


def create_table_from_template(clients: AwsClients, name: str) -> None:
    """The state table exactly as template.yaml declares it (so tests cannot drift from infra)."""
    props = load_template(ROOT / "template.yaml")["Resources"]["StateTable"]["Properties"]
    ddb = clients.client("dynamodb", REGION)
    ddb.create_table(TableName=name, KeySchema=props["KeySchema"], AttributeDefinitions=props["AttributeDefinitions"], BillingMode=props["BillingMode"])


@dataclass
class Sandbox:
    clients: AwsClients
    service: App
    clock: SimClock
    fidelity: Fidelity
    zone_id: str = ""
    cfg: ClusterConfig | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def rds(self) -> Any:
        return self.clients.client("rds", REGION)

    def r53(self) -> Any:
        return self.clients.client("route53", REGION)

    def cw(self) -> Any:
        return self.clients.client("cloudwatch", REGION)

    # -- arrange --------------------------------------------------------------------------------
    def instance(self, instance_id: str) -> dict[str, Any] | None:
        found = [i for i in self.rds().describe_db_instances()["DBInstances"] if i["DBInstanceIdentifier"] == instance_id]
        return found[0] if found else None

    def endpoint(self, instance_id: str) -> str:
        inst = self.instance(instance_id)
        assert inst is not None
        return str(inst["Endpoint"]["Address"])

    def put_lag(self, instance_id: str, seconds: float, at: datetime | None = None, region: str = REGION) -> None:
        sandbox.put_lag(self.clients, instance_id, seconds, at or self.clock.now() - timedelta(seconds=30), region)

    def writer_targets(self, name: str = "writer.orders.example.internal") -> list[str]:
        return self._targets(name)

    def reader_targets(self, name: str = "reader.orders.example.internal") -> list[str]:
        return self._targets(name)

    def _targets(self, name: str) -> list[str]:
        sets = self.r53().list_resource_record_sets(HostedZoneId=self.zone_id, StartRecordName=name, StartRecordType="CNAME", MaxItems="100")
        return sorted(rr["Value"] for rs in sets["ResourceRecordSets"] if rs["Name"] == name + "." and rs["Type"] == "CNAME" for rr in rs["ResourceRecords"])

    def set_alarm(self, state: str, name: str = "orders-primary-down") -> None:
        self.cw().set_alarm_state(AlarmName=name, StateValue=state, StateReason="test")

    def subscribe(self) -> tuple[str, str]:
        """A notification topic for the executor, delivering raw messages to an SQS inbox: (topic, queue)."""
        sns, sqs = self.clients.client("sns", REGION), self.clients.client("sqs", REGION)
        topic = sns.create_topic(Name="rds-ha-notifications")["TopicArn"]
        queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
        self.service.deps.recorder.topic_arn = topic
        return topic, queue

    def messages(self, queue: str) -> list[dict[str, Any]]:
        """The notifications delivered so far (and taken off the queue)."""
        sqs = self.clients.client("sqs", REGION)
        out = []
        while True:
            batch = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return out
            for msg in batch:
                out.append(json.loads(msg["Body"]))
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=msg["ReceiptHandle"])

    def crash_after(self, steps: int, run: Callable[[], Any]) -> None:
        """Run `run` and die (CrashPoint) after its `steps`-th AWS-mutating step, as a dead process
        does: its lease is not released and stays until it expires."""
        done: list[str] = []

        def crash(step: str) -> None:
            done.append(step)
            if len(done) == steps:
                raise CrashPoint(step)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(self.service.deps.executor, "after_step", crash)
            patch.setattr(self.service.deps.table, "release_lease", lambda *a, **k: None)
            with pytest.raises(CrashPoint):
                run()

    def count_calls(self, service: str, operation: str) -> list[int]:
        """A live counter of successful calls of one AWS operation (botocore events)."""
        calls = [0]

        def seen(http_response: Any = None, parsed: Any = None, **_: Any) -> None:
            if http_response is not None and http_response.status_code < 300:
                calls[0] += 1

        self.clients.client(service, REGION).meta.events.register(
            f"after-call.{self.clients.client(service, REGION).meta.service_model.endpoint_prefix}.{operation}", seen
        )
        return calls

    def slow_attempt(self, service: str, operation: str, seconds: float, meanwhile: Callable[[], Any] | None = None, fail: bool = True) -> list[int]:
        """The first HTTP attempt of `operation` takes `seconds` of simulated time, during which
        `meanwhile` runs in another thread (another Lambda, an operator). With `fail`, that attempt ends
        in Throttling and botocore retries it, as after a read timeout; otherwise it then goes through.
        Returns a live count of the attempts seen."""
        client = self.clients.client(service, REGION)
        attempts = [0]

        def slow(request: Any = None, **_: Any) -> Any:
            attempts[0] += 1
            if attempts[0] > 1:
                return None
            self.clock.advance(seconds)
            if meanwhile is not None:
                errors: list[BaseException] = []

                def run() -> None:
                    try:
                        meanwhile()
                    except BaseException as exc:  # noqa: BLE001 - reported in the test's thread
                        errors.append(exc)

                other = threading.Thread(target=run)
                other.start()
                other.join()
                if errors:
                    raise errors[0]
            if not fail:
                return None
            return _throttled(request.url, client.meta.service_model.protocol)

        client.meta.events.register(f"before-send.{client.meta.service_model.service_id.hyphenize()}.{operation}", slow)
        return attempts

    def replicas_of(self, source: str) -> list[dict[str, Any]]:
        return [i for i in self.rds().describe_db_instances()["DBInstances"] if i.get("ReadReplicaSourceDBInstanceIdentifier") == source]

    def promotions(self) -> list[str]:
        """Instances that are standalone (not replicas) now."""
        return sorted(
            i["DBInstanceIdentifier"] for i in self.rds().describe_db_instances()["DBInstances"] if not i.get("ReadReplicaSourceDBInstanceIdentifier")
        )

    def proxy_targets(self) -> list[tuple[str, str]]:
        """(instance, health) of each target of orders-proxy's default target group."""
        return sandbox.proxy_targets(self.clients)

    def state(self) -> Any:
        assert self.cfg is not None
        return self.service.deps.table.get_state(self.cfg.name)

    def history_kinds(self) -> list[str]:
        assert self.cfg is not None
        return [h["kind"] for h in self.service.history(self.cfg.name)]


def _throttled(url: str, protocol: str) -> Any:
    """A Throttling answer in the service's protocol (botocore retries it)."""
    from botocore.awsrequest import AWSResponse

    class Raw:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def stream(self, **_: Any) -> Any:
            yield self.data

    if protocol == "json":
        body, kind = b'{"__type": "ThrottlingException", "message": "Rate exceeded"}', "application/x-amz-json-1.0"
    else:
        body = (
            b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>1</RequestId></ErrorResponse>"
        )
        kind = "text/xml"
    return AWSResponse(url, 400, {"content-type": kind}, Raw(body))


CONFIG = """\
clusters:
  - name: orders
    region: us-east-1
    primary: orders-db
    replicas: {{min: {min}, max: 4}}
    dns: {{zone_id: {zone}, writer: writer.orders.example.internal, reader: reader.orders.example.internal, ttl: 5}}
    failover: {{max_lag_seconds: {max_lag}, cooldown_seconds: {cooldown}{extra_failover}}}
    alarms:
      failover: [{alarms}]
{extra}"""


def build_cluster(
    sb: Sandbox,
    replicas: dict[str, tuple[str, float | None]] | None = None,
    *,
    min_replicas: int = 2,
    max_lag: float = 30,
    cooldown: int = 600,
    extra_failover: str = "",
    primary_az: str = "us-east-1a",
    tags: dict[str, dict[str, str]] | None = None,
    alarms: tuple[str, ...] = ("orders-primary-down",),
    extra: str = "",
    engine: str = "postgres",
    kms_key_id: str | None = None,
    own_parameter_groups: bool = False,
    proxy: bool = False,
) -> ClusterConfig:
    """A primary `orders-db` with replicas {id: (az, lag or None)}, DNS, the alarm in ALARM, the config applied.
    `extra`: more YAML lines of the cluster (indented 4), e.g. more alarm roles under `alarms:` first.
    `proxy`: an RDS Proxy, orders-proxy, targets the primary and the cluster names it (`proxy:`)."""
    if replicas is None:
        replicas = {"orders-db-r1": ("us-east-1b", 12.0), "orders-db-r2": ("us-east-1c", 2.0)}
    sb.zone_id = sandbox.create_cluster(
        sb.clients,
        sb.clock.now(),
        replicas,
        primary_az=primary_az,
        tags=tags,
        alarms=alarms,
        alarm_state="ALARM",
        engine=engine,
        kms_key_id=kms_key_id,
        own_parameter_groups=own_parameter_groups,
    )
    if proxy:
        family = "POSTGRESQL" if engine == "postgres" else "MYSQL"
        sandbox.create_proxy(sb.clients, engine_family=family)
        extra = f"    proxy: {{name: {sandbox.PROXY}}}\n" + extra
    text = CONFIG.format(
        min=min_replicas, zone=sb.zone_id, max_lag=max_lag, cooldown=cooldown, extra_failover=extra_failover, alarms=", ".join(alarms), extra=extra
    )
    cfg = parse_config(text, "orders.yaml").clusters[0]
    sb.service.apply([cfg], "orders.yaml", "test")
    sb.cfg = cfg
    return cfg


def alarm_event(shape: str, at: datetime, **kw: Any) -> dict[str, Any]:
    """An alarm event in one of the three shapes (the same generator made events/*.json)."""
    return samples.alarm_event(shape, at, **kw)


def context(timeout: float = 300) -> LocalContext:
    return LocalContext(function_name="FailoverFunction", timeout_seconds=timeout)
