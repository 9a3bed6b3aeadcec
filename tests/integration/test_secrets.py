"""No secret, password or credential appears in any log line or output of a failover and the CLI."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import boto3

from rds_ha.adapters.aws import AwsClients
from rds_ha.app import App, Settings
from rds_ha.cli.main import main
from rds_ha.handlers import runtime
from rds_ha.handlers.failover import handler
from rds_ha.handlers.failover import reset as reset_failover

from ..builders import Sandbox, alarm_event, build_cluster, context

SECRET_KEY = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYzz-SECRET"  # noqa: S105 - a marker to look for
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEJr-TOKEN-MARKER"  # noqa: S105
DB_PASSWORD = "local-moto-only-1"  # noqa: S105 - what the sandbox creates the primary with


def test_no_secret_in_logs_or_output(aws: Sandbox, capsys: Any, caplog: Any) -> None:
    build_cluster(aws)
    session = boto3.session.Session(
        aws_access_key_id="AKIAEXAMPLEMARKER", aws_secret_access_key=SECRET_KEY, aws_session_token=SESSION_TOKEN, region_name="us-east-1"
    )
    svc = App(AwsClients(session), Settings.from_env(), clock=aws.clock)
    runtime.use(svc)
    reset_failover()
    # rds-ha's own logger at its most verbose; botocore at its default level, as in Lambda (its DEBUG
    # output prints request headers, session token included, and is never enabled by rds-ha).
    caplog.set_level(logging.DEBUG, logger="rds-ha")
    handler(alarm_event("eventbridge", aws.clock.now()), context())
    for args in (["status", "orders", "--json"], ["history", "orders"], ["failover", "orders", "--dry-run"]):
        with contextlib.suppress(SystemExit):
            main(["--verbose", *args])
    captured = capsys.readouterr()
    text = captured.out + captured.err + "\n".join(r.getMessage() + str(r.__dict__) for r in caplog.records)
    assert "failover complete" in text  # the logs were captured
    for secret in (SECRET_KEY, SESSION_TOKEN, DB_PASSWORD):
        assert secret not in text
