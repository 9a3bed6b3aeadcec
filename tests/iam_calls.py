"""Least privilege, proven: every AWS call a handler makes in the suite is in its policy, and
every action its policy grants is called somewhere in the suite.

The recorder listens to botocore's before-call event on the test's boto3 session and attributes
each call to the template.yaml function whose handler is on the stack.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from rds_ha.local.template import function_handlers, load_template

ROOT = Path(__file__).resolve().parents[1]
# IAM service prefixes where they differ from botocore's endpoint prefix.
IAM_PREFIX = {"monitoring": "cloudwatch"}
# IAM action names where they differ from the API operation's.
IAM_ACTION = {"lambda:Invoke": "lambda:InvokeFunction"}
# Authorised by AWS as part of another call: RDS checks rds:AddTagsToResource when a create request
# carries tags ("Grant permission to tag Amazon RDS resources during creation", RDS User Guide).
IMPLIED = {"rds:CreateDBInstanceReadReplica": ("rds:AddTagsToResource",)}
# Granted but called by AWS on the function's behalf, not by our code (SAM grants it for the destination anyway).
NOT_CALLED_BY_CODE = {
    "sqs:SendMessage": "Lambda sends failed asynchronous invocations to the on-failure destination with the function's role",
    "rds-db:connect": "checked by the database when the probe logs in with an IAM token (tested with a password secret: no local IAM auth)",
}


def _handler_modules(template: dict[str, Any]) -> dict[str, str]:
    return {path.rpartition(".")[0]: logical_id for logical_id, path in function_handlers(template).items()}


class Recorder:
    def __init__(self) -> None:
        self.modules = _handler_modules(load_template(ROOT / "template.yaml"))
        self.calls: dict[str, set[str]] = defaultdict(set)

    def _function(self) -> str | None:
        frame = sys._getframe(2)
        while frame is not None:
            if frame.f_code.co_name == "handler":
                fn = self.modules.get(frame.f_globals.get("__name__", ""))
                if fn:
                    return fn
            frame = frame.f_back  # type: ignore[assignment]
        return None

    def before_call(self, model: Any = None, **_: Any) -> None:
        fn = self._function()
        if fn is not None and model is not None:
            prefix = model.service_model.endpoint_prefix
            action = f"{IAM_PREFIX.get(prefix, prefix)}:{model.name}"
            action = IAM_ACTION.get(action, action)
            self.calls[fn] |= {action, *IMPLIED.get(action, ())}

    def register(self, session: Any) -> None:
        session.events.register("before-call", self.before_call)

    def dump(self, path: Path) -> None:
        path.write_text(json.dumps({fn: sorted(actions) for fn, actions in self.calls.items()}))


def _statements(policy: Any, resources: dict[str, Any]) -> list[dict[str, Any]]:
    if isinstance(policy, dict) and "Ref" in policy:  # an AWS::IAM::ManagedPolicy of this template
        return list(resources[policy["Ref"]]["Properties"]["PolicyDocument"]["Statement"])
    if isinstance(policy, dict) and "Statement" in policy:
        return list(policy["Statement"])
    raise ValueError(f"policy form not understood by the check: {policy!r}")


def granted(template: dict[str, Any]) -> dict[str, set[str]]:
    """Function logical id -> the actions its policies allow."""
    resources = template["Resources"]
    out: dict[str, set[str]] = {}
    for logical_id in function_handlers(template):
        actions: set[str] = set()
        for policy in resources[logical_id]["Properties"].get("Policies", []):
            for statement in _statements(policy, resources):
                if statement.get("Effect") == "Allow":
                    action = statement["Action"]
                    actions |= {action} if isinstance(action, str) else set(action)
        out[logical_id] = actions
    return out


def problems(calls: dict[str, set[str]], grants: dict[str, set[str]], check_unused: bool) -> list[str]:
    out = []
    for fn, actions in sorted(calls.items()):
        for action in sorted(actions - grants.get(fn, set())):
            out.append(f"{fn} calls {action}, which its policy in template.yaml does not allow")
    if check_unused:
        for fn, actions in sorted(grants.items()):
            for action in sorted(actions - calls.get(fn, set()) - set(NOT_CALLED_BY_CODE)):
                out.append(f"{fn}'s policy grants {action}, which no code path exercised by the tests calls")
    return out


def merge(folder: Path) -> dict[str, set[str]]:
    calls: dict[str, set[str]] = defaultdict(set)
    for file in folder.glob("calls-*.json"):
        for fn, actions in json.loads(file.read_text()).items():
            calls[fn] |= set(actions)
    return calls
