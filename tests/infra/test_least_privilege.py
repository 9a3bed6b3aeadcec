"""The authorization check itself: it evaluates a request as IAM would (every required resource type, the
conditions the request carries, condition keys the action supports) and reports a grant nothing used."""

from __future__ import annotations

import copy
from typing import Any

from rds_ha.local.template import load_template

from ..authz import Request, Resource, _freeze, check
from ..builders import ROOT

TEMPLATE = load_template(ROOT / "template.yaml")
ARN = "arn:aws:rds:us-east-1:123456789012"
TAGS = {"aws:RequestTag/rds-ha:cluster": "orders", "aws:RequestTag/rds-ha:role": "replica", "aws:TagKeys": ("rds-ha:cluster", "rds-ha:role")}


def _create_replica(fn: str = "ReplicaScalingFunction", **context: Any) -> Request:
    return Request(
        fn,
        "rds:CreateDBInstanceReadReplica",
        (
            Resource("db", f"{ARN}:db:orders-db-r3"),
            Resource("db", f"{ARN}:db:orders-db", (("rds-ha:cluster", "orders"),)),
            Resource("og", f"{ARN}:og:default:postgres-16"),
            Resource("pg", f"{ARN}:pg:default.postgres16"),
            Resource("subgrp", f"{ARN}:subgrp:default"),
            Resource("cluster", f"{ARN}:cluster:(any)"),
        ),
        _freeze(context),
    )


def _statement(template: dict[str, Any], policy: str, sid: str) -> dict[str, Any]:
    (found,) = [s for s in template["Resources"][policy]["Properties"]["PolicyDocument"]["Statement"] if s.get("Sid") == sid]
    return found


def test_a_create_granted_on_db_arns_only_is_refused_for_its_option_parameter_and_subnet_groups() -> None:
    """The defect of the template before: CreateDBInstanceReadReplica on db:* only."""
    template = copy.deepcopy(TEMPLATE)
    _statement(template, "CreateReplicasPolicy", "CreateTaggedReplicas")["Resource"] = {"Fn::Sub": "arn:${AWS::Partition}:rds:*:${AWS::AccountId}:db:*"}
    found = check(template, [_create_replica(**TAGS)], check_unused=False)
    assert [f.split(" on ")[1].split(" (")[0] for f in found] == [
        f"{ARN}:cluster:(any)",
        f"{ARN}:og:default:postgres-16",
        f"{ARN}:pg:default.postgres16",
        f"{ARN}:subgrp:default",
    ], found
    assert check(TEMPLATE, [_create_replica(**TAGS)], check_unused=False) == []


def test_a_condition_the_request_does_not_meet_is_a_refusal() -> None:
    # No rds-ha:cluster request tag: the create is not one of rds-ha's members.
    found = check(TEMPLATE, [_create_replica(**{"aws:RequestTag/rds-ha:role": "replica"})], check_unused=False)
    assert [f.split("(resource type ")[1].split(")")[0] for f in found] == ["cluster", "db", "og", "pg", "subgrp"], found  # one line per type
    # The fence tag on an instance that is not tagged as a member.
    fence = Request("FailoverFunction", "rds:AddTagsToResource", (Resource("db", f"{ARN}:db:shop-db"),), _freeze({"aws:TagKeys": ("rds-ha:fenced",)}))
    assert check(TEMPLATE, [fence], check_unused=False) == [
        f"FailoverFunction: rds:AddTagsToResource on {ARN}:db:shop-db (resource type db) is not allowed by its policies in template.yaml"
        '; context {"aws:TagKeys": ["rds-ha:fenced"]}'
    ]
    member = Request(fence.fn, fence.action, (Resource("db", f"{ARN}:db:orders-db", (("rds-ha:cluster", "orders"),)),), fence.context)
    assert check(TEMPLATE, [member], check_unused=False) == []


def test_a_kms_grant_outside_rds_is_refused() -> None:
    key = "arn:aws:kms:us-east-1:123456789012:key/k1"
    via = {"kms:ViaService": "rds.us-east-1.amazonaws.com", "kms:GrantIsForAWSResource": "true"}
    grant = Request("ReconcileFunction", "kms:CreateGrant", (Resource("key", key),), _freeze(via))
    assert check(TEMPLATE, [grant], check_unused=False) == []
    direct = Request("ReconcileFunction", "kms:CreateGrant", (Resource("key", key),), _freeze({"kms:GrantIsForAWSResource": "true"}))
    assert len(check(TEMPLATE, [direct], check_unused=False)) == 1


def test_a_condition_key_the_action_does_not_support_is_reported() -> None:
    template = copy.deepcopy(TEMPLATE)
    _statement(template, "WorkflowPolicy", "ActOnClusterMembers")["Condition"]["StringEquals"] = {
        "rds:cluster-tag/rds-ha:cluster": "orders",
        "kms:ViaService": "x",
    }
    found = check(template, [], check_unused=False)
    assert any("condition key kms:ViaService is not one rds:PromoteReadReplica supports" in f for f in found), found


def test_a_statement_no_request_used_is_reported() -> None:
    found = check(TEMPLATE, [_create_replica(**TAGS)], check_unused=True)
    assert "ReplicaScalingFunction's statement CreateReplicasPolicy:CreateTaggedReplicas" not in " ".join(found)
    assert any(
        f.startswith("ReplicaScalingFunction's statement CreateReplicasPolicy:TagReplicasOnCreate (rds:AddTagsToResource) allows no request") for f in found
    )


def test_for_all_values_on_a_missing_key_is_vacuously_true_as_in_iam() -> None:
    from ..authz import _condition_holds

    assert _condition_holds("ForAllValues:StringEquals", "aws:TagKeys", ["a"], {})
    assert not _condition_holds("StringLike", "aws:ResourceTag/rds-ha:cluster", "?*", {})
    assert not _condition_holds("ForAllValues:StringEquals", "aws:TagKeys", ["a"], {"aws:TagKeys": ("a", "b")})
    assert _condition_holds("ForAnyValue:StringEquals", "aws:TagKeys", ["a"], {"aws:TagKeys": ("a", "b")})
