"""The least-privilege check itself: it catches a call the policy does not allow, and a grant no code uses."""

from __future__ import annotations

import copy

from rds_ha.local.template import load_template

from ..builders import ROOT
from ..iam_calls import granted, problems

TEMPLATE = load_template(ROOT / "template.yaml")


def test_a_deliberately_missing_permission_is_reported() -> None:
    template = copy.deepcopy(TEMPLATE)
    statements = template["Resources"]["WorkflowPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    for statement in statements:
        if isinstance(statement["Action"], list) and "rds:PromoteReadReplica" in statement["Action"]:
            statement["Action"].remove("rds:PromoteReadReplica")
    found = problems({"FailoverFunction": {"rds:PromoteReadReplica", "rds:DescribeDBInstances"}}, granted(template), check_unused=False)
    assert found == ["FailoverFunction calls rds:PromoteReadReplica, which its policy in template.yaml does not allow"]


def test_a_grant_no_code_calls_is_reported() -> None:
    grants = granted(TEMPLATE)
    calls = {fn: set(actions) - {"sqs:SendMessage"} for fn, actions in grants.items()}
    calls["ReconcileFunction"].discard("rds:StopDBInstance")
    found = problems(calls, grants, check_unused=True)
    assert found == ["ReconcileFunction's policy grants rds:StopDBInstance, which no code path exercised by the tests calls"]


def test_functions_resolve_the_shared_managed_policy() -> None:
    grants = granted(TEMPLATE)
    assert "rds:PromoteReadReplica" in grants["FailoverFunction"] and "rds:PromoteReadReplica" in grants["ReconcileFunction"]
    # UpdateItem: the lease's renewal (every function that acts on a cluster); FailoverFunction's idempotency records too.
    assert all(
        "dynamodb:UpdateItem" in grants[f] for f in ("FailoverFunction", "ReconcileFunction", "ReplicaScalingFunction", "MultiAzFunction", "DnsSyncFunction")
    )
