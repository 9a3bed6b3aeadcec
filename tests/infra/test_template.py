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
    assert pattern["detail"]["state"]["value"] == ["ALARM"]
    permission = RESOURCES["AlarmActionPermission"]["Properties"]
    assert permission["Principal"] == "lambda.alarms.cloudwatch.amazonaws.com"
    assert fn["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Type"] == "SQS"


def test_reconcile_runs_on_a_schedule() -> None:
    fn = RESOURCES["ReconcileFunction"]["Properties"]
    assert fn["Events"]["Schedule"]["Type"] == "Schedule"
    assert fn["ReservedConcurrentExecutions"] == 1
