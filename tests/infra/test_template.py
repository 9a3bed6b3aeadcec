"""template.yaml: what the code depends on is declared there, and every handler imports."""

from __future__ import annotations

import importlib

from rds_ha.adapters.state import ATTRIBUTES, KEY_SCHEMA, TTL_ATTRIBUTE
from rds_ha.local.template import function_handlers, load_template

from ..builders import ROOT

TEMPLATE = load_template(ROOT / "template.yaml")
RESOURCES = TEMPLATE["Resources"]


def test_state_table_schema_is_the_one_the_code_uses() -> None:
    props = RESOURCES["StateTable"]["Properties"]
    assert props["KeySchema"] == KEY_SCHEMA
    assert props["AttributeDefinitions"] == ATTRIBUTES
    assert props["TimeToLiveSpecification"] == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["SSESpecification"]["SSEEnabled"] is True


def test_every_handler_imports_and_is_callable() -> None:
    handlers = function_handlers(TEMPLATE)
    assert {"FailoverFunction", "ReconcileFunction"} <= set(handlers)
    for logical_id, path in handlers.items():
        module, _, attr = path.rpartition(".")
        assert callable(getattr(importlib.import_module(module), attr)), logical_id


def test_failover_function_receives_alarm_state_changes_three_ways() -> None:
    fn = RESOURCES["FailoverFunction"]["Properties"]
    pattern = fn["Events"]["AlarmStateChange"]["Properties"]["Pattern"]
    assert pattern["detail-type"] == ["CloudWatch Alarm State Change"]
    assert pattern["detail"]["state"]["value"] == ["ALARM", "OK"]
    permission = RESOURCES["AlarmActionPermission"]["Properties"]
    assert permission["Principal"] == "lambda.alarms.cloudwatch.amazonaws.com"
    assert fn["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Type"] == "SQS"


def test_reconcile_runs_on_a_schedule() -> None:
    fn = RESOURCES["ReconcileFunction"]["Properties"]
    assert fn["Events"]["Schedule"]["Type"] == "Schedule"
    assert fn["ReservedConcurrentExecutions"] == {"Fn::If": ["Reserve", 1, {"Ref": "AWS::NoValue"}]}


def test_handlers_import_without_what_the_artifact_leaves_out() -> None:
    """functions/requirements.txt leaves PyYAML (and the CLI's Typer and Rich) out of the Lambda
    artifact: no handler may import them."""
    import subprocess  # nosec B404 - this interpreter, fixed code
    import sys

    modules = sorted({path.rpartition(".")[0] for path in function_handlers(load_template(ROOT / "template.yaml")).values()})
    code = "import sys\nfor m in ('yaml', 'typer', 'rich', 'moto'): sys.modules[m] = None\n" + "".join(f"import {m}\n" for m in modules)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"AWS_DEFAULT_REGION": "us-east-1", "PATH": "/usr/bin:/bin"})  # noqa: S603
    assert done.returncode == 0, done.stderr
    lines = (ROOT / "functions" / "requirements.txt").read_text().lower().splitlines()
    wanted = [line for line in lines if line.strip() and not line.startswith("#")]
    assert not [line for line in wanted if line.startswith(("pyyaml", "typer", "rich"))]
