"""boto3 clients: created lazily, once per process and region, with adaptive retries."""

from __future__ import annotations

import difflib
import functools
import os
import threading
from collections.abc import Callable
from typing import Any

import boto3
import botocore
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ..core.errors import AwsError, InstanceAlreadyExistsError, InstanceNotFoundError, InstanceStateError, UnknownRegionError

# Adaptive mode adds client-side rate limiting on throttling to the standard retry policy, which
# already retries throttling, 5xx and Route 53's PriorRequestNotComplete with backoff.
CONNECT_TIMEOUT = 4
READ_TIMEOUT = 15
RETRY_CONFIG = Config(
    retries={"mode": "adaptive", "max_attempts": 6},
    connect_timeout=CONNECT_TIMEOUT,
    read_timeout=READ_TIMEOUT,
    user_agent_extra="rds-ha",
)
# The longest one HTTP attempt takes to reach AWS: the connection (connect timeout) and the request's
# bytes on the socket (read timeout, which botocore applies to every socket operation), plus a second.
# The lease guard (rds_ha.lease) sends an attempt only while the lease outlasts this.
ATTEMPT_SECONDS = CONNECT_TIMEOUT + READ_TIMEOUT + 1

# The calls that change something: each attempt of one passes the send guard first.
MUTATING = {
    "rds": frozenset(
        {
            "PromoteReadReplica",
            "CreateDBInstanceReadReplica",
            "DeleteDBInstance",
            "StopDBInstance",
            "ModifyDBInstance",
            "AddTagsToResource",
            "RebootDBInstance",
            "ModifyDBParameterGroup",
            "CopyDBParameterGroup",
            "DeleteDBParameterGroup",
            "RemoveTagsFromResource",
            "RegisterDBProxyTargets",
            "DeregisterDBProxyTargets",
        }
    ),
    "route53": frozenset({"ChangeResourceRecordSets"}),
    "cloudwatch": frozenset({"PutMetricAlarm"}),
}

TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "PriorRequestNotComplete",
        "ServiceUnavailable",
        "InternalFailure",
        "InternalError",
        "ProvisionedThroughputExceededException",
    }
)


@functools.cache
def known_regions() -> frozenset[str]:
    """Every region of every partition in botocore's endpoint data (aws, aws-cn, aws-us-gov, ...)."""
    data = botocore.session.get_session().get_data("endpoints")
    return frozenset(region for partition in data["partitions"] for region in partition["regions"])


def check_region(region: str) -> str:
    """`region`, or UnknownRegionError: a typo'd region is said as such before any request (botocore
    would send it to a host that does not exist, or to a local endpoint that answers nonsense)."""
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME") and region == os.environ.get("AWS_REGION"):
        return region  # Lambda's own region is real (even past the bundled botocore), and no cold start reads the endpoints
    known = known_regions()
    if region in known:
        return region
    # Letters swapped (us-esat-1) first, then the closest spelling.
    close = [r for r in sorted(known) if sorted(r) == sorted(region)] or difflib.get_close_matches(region, sorted(known), n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    raise UnknownRegionError(f"unknown AWS region {region!r}{hint} (if it is a new region, upgrade boto3: botocore {botocore.__version__} does not know it)")


class AwsClients:
    """A per-process cache of clients. Pass one around; tests make their own inside moto."""

    def __init__(self, session: boto3.session.Session | None = None, endpoint_url: str | None = None) -> None:
        self._session = session
        self._endpoint_url = endpoint_url
        self._clients: dict[tuple[str, str | None, str], Any] = {}
        self._lock = threading.Lock()
        # Called with (service, operation) before every HTTP attempt of a MUTATING call; it raises to
        # keep the attempt from being sent (the lease guard).
        self.send_guard: Callable[[str, str], None] | None = None

    @property
    def session(self) -> boto3.session.Session:
        if self._session is None:
            self._session = boto3.session.Session()
        return self._session

    def client(self, service: str, region: str | None = None, config: Config | None = None, purpose: str = "") -> Any:
        """The cached client of `service` in `region`; `config` and `purpose` make a separate one
        (e.g. the hooks' client, whose timeout is the hook's)."""
        key = (service, region, purpose)
        client = self._clients.get(key)
        if client is None:
            with self._lock:  # boto3 sessions are not thread-safe when creating clients
                client = self._clients.get(key)
                if client is None:
                    kwargs: dict[str, Any] = {"config": config or RETRY_CONFIG}
                    if region or self.session.region_name:
                        check_region(region or self.session.region_name)
                    if region:
                        kwargs["region_name"] = region
                    if self._endpoint_url:
                        kwargs["endpoint_url"] = self._endpoint_url
                    client = self.session.client(service, **kwargs)
                    if service in MUTATING:
                        # request-created fires once per attempt (retries included), before signing and sending.
                        client.meta.events.register("request-created", self._before_attempt(service))
                    self._clients[key] = client
        return client

    def _before_attempt(self, service: str) -> Callable[..., None]:
        mutating = MUTATING[service]

        def check(operation_name: str = "", **_: Any) -> None:
            if self.send_guard is not None and operation_name in mutating:
                self.send_guard(service, operation_name)

        return check

    @property
    def default_region(self) -> str | None:
        return self.session.region_name


def translate(exc: Exception, what: str) -> AwsError:
    """Turn a botocore error into one of ours, with a one-line message."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", "Unknown"))
        msg = str(err.get("Message", "")).strip()
        text = f"{what}: {code}: {msg}" if msg else f"{what}: {code}"
        if code in {"InvalidDBInstanceState", "InvalidDBInstanceStateFault", "InvalidDBClusterStateFault"}:
            return InstanceStateError(text, code)
        if code in {"DBInstanceNotFound", "DBInstanceNotFoundFault"}:
            return InstanceNotFoundError(text)
        if code in {"DBInstanceAlreadyExists", "DBInstanceAlreadyExistsFault"}:
            return InstanceAlreadyExistsError(text)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return AwsError(text, code=code, transient=code in TRANSIENT_CODES or int(status or 0) >= 500)
    if isinstance(exc, BotoCoreError):
        return AwsError(f"{what}: {exc}", code=type(exc).__name__, transient=True)
    return AwsError(f"{what}: {exc}", code=type(exc).__name__)


def caller_account(clients: AwsClients) -> str:
    """The account rds-ha runs in (sts:GetCallerIdentity needs no IAM permission)."""
    try:
        return str(clients.client("sts").get_caller_identity()["Account"])
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, "read the caller's account (sts:GetCallerIdentity)") from exc
