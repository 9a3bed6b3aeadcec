"""Hostile CLI arguments: a clear error and a non-zero exit, never a traceback, never an AWS change."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rds_ha.cli.main import main

from ..builders import Sandbox, build_cluster

COMMANDS = [
    ["status"],
    ["history"],
    ["failover"],
    ["reconcile"],
    ["alarms", "render"],
    ["apply", "-f"],
    ["invoke"],
    ["pause"],
    ["resume"],
    ["ack"],
    ["probe"],
    ["drill"],
]
junk = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=40).filter(lambda s: s not in {"orders", "--help", "-h"})
flags = st.sampled_from(
    [
        "--json",
        "--force",
        "--yes",
        "--max-lag",
        "--ignore-cooldown",
        "--dry-run",
        "--to",
        "--wait",
        "--limit",
        "--event",
        "--reason",
        "-f",
        "--nope",
        "-x",
        "--template",
        "--endpoint",
        "--samples",
        "--probe-dsn-secret",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(COMMANDS), st.lists(junk | flags, max_size=5))
def test_random_arguments_never_crash_or_change_aws(aws: Sandbox, capsys: Any, command: list[str], args: list[str]) -> None:
    if aws.cfg is None:
        build_cluster(aws)
        aws.set_alarm("OK")  # a healthy cluster: nothing here has a reason to fail it over
        aws.extra["writer"] = aws.writer_targets()
    try:
        main([*command, *args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    assert code != 1, out.err  # 1 is reserved for internal errors: a bug
    if code == 0:  # only read-only outcomes can succeed on a cluster that is not "orders"
        assert command[0] in {"status", "reconcile", "history", "alarms"} or "--help" in args, (command, args)
    assert aws.promotions() == ["orders-db"]
    assert aws.writer_targets() == aws.extra["writer"]
