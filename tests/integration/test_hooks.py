"""Operator hooks: the pre-failover hook can veto, a hook that hangs is cut off by its timeout
(proceed or veto, as configured), the post-failover hook hears the outcome. The Lambda calls are
answered in-process at botocore's HTTP layer (Lambda cannot run code here without Docker), so the
request rds-ha sends and the IAM action it needs are the real ones."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError

from rds_ha.core.config import ClusterConfig
from rds_ha.handlers.failover import handler as failover
from rds_ha.handlers.reconcile import handler as reconcile

from ..builders import Sandbox, alarm_event, build_cluster, context
from .test_aws_faults import _Raw

PRE = "arn:aws:lambda:us-east-1:123456789012:function:rds-ha-hook-pre"
POST = "arn:aws:lambda:us-east-1:123456789012:function:rds-ha-hook-post"


class FakeLambda:
    """Answers lambda:Invoke for the hooks: `reply` (a JSON-able value), a function error, or a hang."""

    def __init__(self, aws: Sandbox, reply: Any = None, hang: bool = False, error: bool = False) -> None:
        self.reply, self.hang, self.error = reply if reply is not None else {"veto": False}, hang, error
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        aws.clients.session.events.register("before-send.lambda.Invoke", self._answer)

    def _answer(self, request: Any, **_: Any) -> AWSResponse:
        function = request.url.split("/functions/")[1].split("/")[0]
        kind = request.headers.get("X-Amz-Invocation-Type", b"RequestResponse")
        kind = kind.decode() if isinstance(kind, bytes) else kind
        self.calls.append((function, kind, json.loads(request.body)))
        if kind == "Event":
            return AWSResponse(request.url, 202, {}, _Raw(b""))
        if self.hang:
            raise ReadTimeoutError(endpoint_url=request.url)
        headers = {"X-Amz-Function-Error": "Unhandled"} if self.error else {}
        return AWSResponse(request.url, 200, headers, _Raw(json.dumps(self.reply).encode()))


def with_hooks(aws: Sandbox, **hooks: Any) -> None:
    assert aws.cfg is not None
    data = aws.cfg.model_dump()
    data["hooks"] = {"pre_failover": PRE, "post_failover": POST, **hooks}
    aws.cfg = ClusterConfig.model_validate(data)
    aws.service.apply([aws.cfg], "orders.yaml", "test")


def test_pre_hook_veto_stops_the_failover_and_says_why(aws: Sandbox) -> None:
    build_cluster(aws)
    with_hooks(aws)
    fake = FakeLambda(aws, reply={"veto": True, "reason": "the payments batch is writing; page a human"})
    result = failover(alarm_event("eventbridge", aws.clock.now()), context())
    assert result["outcome"] == "vetoed" and result["reason"] == "vetoed by the pre_failover hook: the payments batch is writing; page a human"
    assert aws.promotions() == ["orders-db"] and aws.writer_targets() == [aws.endpoint("orders-db")]
    state = aws.state()
    assert state.workflow is None and state.blocked is not None and "vetoed" in state.blocked.reason
    assert "failover_vetoed" in aws.history_kinds()
    (function, kind, payload) = fake.calls[0]
    assert function.endswith("rds-ha-hook-pre") and kind == "RequestResponse"
    assert payload["type"] == "pre_failover" and payload["planned"] is False
    assert (payload["old_primary"], payload["new_primary"]) == ("orders-db", "orders-db-r2")


@pytest.mark.parametrize(("on_timeout", "outcome"), [("proceed", "complete"), ("veto", "vetoed")])
def test_a_hook_that_hangs_is_cut_off_by_its_timeout(aws: Sandbox, on_timeout: str, outcome: str) -> None:
    build_cluster(aws)
    with_hooks(aws, timeout_seconds=2, on_timeout=on_timeout)
    FakeLambda(aws, hang=True)
    result = failover(alarm_event("eventbridge", aws.clock.now()), context())
    assert result["outcome"] == outcome, result
    if on_timeout == "proceed":
        assert "hook_failed" in aws.history_kinds()
        assert aws.writer_targets() == [aws.endpoint("orders-db-r2")]
    else:
        assert "did not answer within 2s" in result["reason"] and aws.promotions() == ["orders-db"]


def test_a_hook_that_fails_or_answers_nonsense_does_not_block_recovery(aws: Sandbox) -> None:
    build_cluster(aws)
    with_hooks(aws)
    FakeLambda(aws, reply=["not", "an", "object"])
    assert failover(alarm_event("eventbridge", aws.clock.now()), context())["outcome"] == "complete"
    history = aws.service.history("orders")
    assert any(h["kind"] == "hook_failed" and "expected an object" in h["message"] for h in history)


def test_post_hook_hears_the_outcome_after_the_failover(aws: Sandbox) -> None:
    build_cluster(aws)
    with_hooks(aws)
    fake = FakeLambda(aws)
    assert failover(alarm_event("eventbridge", aws.clock.now()), context())["outcome"] == "complete"
    post = [(k, p) for f, k, p in fake.calls if f.endswith("rds-ha-hook-post")]
    assert len(post) == 1
    kind, payload = post[0]
    assert kind == "Event" and payload["type"] == "post_failover" and payload["outcome"] == "completed"
    assert payload["new_primary"] == "orders-db-r2" and payload["planned"] is False


def test_post_hook_is_called_by_the_reconcile_that_finishes_a_long_failover(aws: Sandbox) -> None:
    build_cluster(aws)
    with_hooks(aws)
    fake = FakeLambda(aws)
    aws.fidelity.promote_seconds = 300
    assert failover(alarm_event("eventbridge", aws.clock.now()), context(timeout=30))["outcome"] == "waiting"
    aws.set_alarm("OK")
    for _ in range(10):
        aws.clock.advance(60)
        reconcile({}, context())
    assert aws.state().workflow is None
    assert [p["outcome"] for f, k, p in fake.calls if f.endswith("rds-ha-hook-post")] == ["completed"]


def test_switchover_asks_the_hook_as_planned(aws: Sandbox) -> None:
    from datetime import timedelta

    build_cluster(aws)
    aws.set_alarm("OK")
    with_hooks(aws)
    fake = FakeLambda(aws, reply={"veto": True, "reason": "not during the sale"})
    aws.clock.advance(60)
    aws.put_lag("orders-db-r2", 0.0)
    result = aws.service.switchover(aws.cfg, None, "alice", aws.clock.now() + timedelta(seconds=600))  # type: ignore[arg-type]
    assert result.outcome == "vetoed" and "not during the sale" in result.reason
    assert fake.calls[0][2]["planned"] is True and fake.calls[0][2]["type"] == "pre_switchover"
    assert aws.promotions() == ["orders-db"]


def test_hook_arns_outside_the_allowed_name_are_a_config_error() -> None:
    from rds_ha.core.config import parse_config
    from rds_ha.core.errors import ConfigError

    text = """\
clusters:
  - name: orders
    region: us-east-1
    primary: orders-db
    replicas: {min: 1, max: 2}
    dns: {zone_id: Z1, writer: w.example}
    hooks: {pre_failover: "arn:aws:lambda:us-east-1:123456789012:function:anything"}
"""
    with pytest.raises(ConfigError) as exc:
        parse_config(text, "orders.yaml")
    assert "line 7: clusters[0].hooks.pre_failover: String should match pattern" in str(exc.value)
