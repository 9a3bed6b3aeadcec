"""The on-call's CLI (issue 19): a killed command never holds a cluster hostage, dangerous commands ask
first (and refuse without --yes where nobody can answer), each override lifts one guard, controls with
nothing to change record nothing, and every command answers in JSON. All through the CLI, on moto."""

from __future__ import annotations

import io
import json
import os
import signal
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from rds_ha.handlers.failover import handler
from rds_ha.local.moto_fidelity import set_status

from ..builders import Sandbox, alarm_event, build_cluster, context
from .test_cli import run


class Terminal(io.StringIO):
    """stdin as an operator's terminal, with the answers they type."""

    def isatty(self) -> bool:
        return True


def lease_of(aws: Sandbox) -> Any:
    return aws.service.deps.table.lease_holder("orders")


def signal_at(aws: Sandbox, seconds: float, signum: int) -> None:
    """Deliver `signum` to this process once the simulated clock has run `seconds` further."""
    due = aws.clock.now().timestamp() + seconds
    sent: list[int] = []

    def check(now: datetime) -> None:
        if not sent and now.timestamp() >= due:
            sent.append(signum)
            os.kill(os.getpid(), signum)

    aws.extra["unwatch"] = aws.clock.watch(check)


# -- a killed command releases the lease ----------------------------------------------------------


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)])
def test_a_failover_killed_while_it_waits_releases_the_lease_and_reconcile_finishes_it(cli_on_sim_clock: Sandbox, capsys: Any, signum: int, code: int) -> None:
    aws = cli_on_sim_clock
    build_cluster(aws)
    set_status("orders-db", "failed")
    aws.fidelity.promote_seconds = 300
    signal_at(aws, 60, signum)  # `timeout 60 rds-ha failover ...`, or Ctrl-C
    assert run("failover", "orders", "--yes") == code
    aws.extra["unwatch"]()
    err = capsys.readouterr().err
    assert f"interrupted by {signal.Signals(signum).name}" in err and "lease is released" in err
    assert "gave up" not in err and "Traceback" not in err
    assert lease_of(aws) is None  # nothing holds the cluster: the next run acts at once
    assert aws.state().workflow is not None  # the failover is not lost...
    aws.clock.advance(300)
    assert run("reconcile", "--wait", "600") == 0  # ...the schedule's next run finishes it
    assert aws.state().workflow is None and aws.state().primary == "orders-db-r2"
    assert aws.writer_targets() == [aws.endpoint("orders-db-r2")]


def test_a_switchover_killed_in_its_catch_up_leaves_no_lease_to_delay_a_failover(cli_on_sim_clock: Sandbox, capsys: Any) -> None:
    aws = cli_on_sim_clock
    build_cluster(aws, {"orders-db-r1": ("us-east-1b", 20.0), "orders-db-r2": ("us-east-1c", 25.0)})
    signal_at(aws, 40, signal.SIGTERM)  # `timeout 40 rds-ha switchover shop`, while the target catches up
    assert run("switchover", "orders", "--yes") == 143
    aws.extra["unwatch"]()
    capsys.readouterr()
    assert lease_of(aws) is None
    # The primary fails right after: the alarm's failover is not "busy", it runs now.
    for rid in ("orders-db-r1", "orders-db-r2"):
        aws.put_lag(rid, 1.0)
    set_status("orders-db", "failed")
    result = handler(alarm_event("eventbridge", aws.clock.now()), context())
    assert result["outcome"] == "complete", result


def test_status_shows_who_holds_the_lease_and_break_lease_asks_then_breaks_only_that_one(cli_on_sim_clock: Sandbox, capsys: Any, monkeypatch: Any) -> None:
    aws = cli_on_sim_clock
    build_cluster(aws)
    table = aws.service.deps.table
    assert table.acquire_lease("orders", "cli bob@laptop pid 4242:abcd", aws.clock.now(), 90)  # bob's command, killed -9
    capsys.readouterr()
    assert run("status", "orders") == 0
    assert "lease    held by cli bob@laptop pid 4242:abcd until " in capsys.readouterr().out
    assert run("status", "orders", "--json") == 0
    assert json.loads(capsys.readouterr().out)["lease"]["holder"] == "cli bob@laptop pid 4242:abcd"

    assert run("break-lease", "orders") == 2  # nobody can answer here
    assert "pass --yes" in capsys.readouterr().err and lease_of(aws) is not None
    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    assert run("break-lease", "orders") == 1
    assert "held by cli bob@laptop pid 4242:abcd" in capsys.readouterr().err and lease_of(aws) is not None
    monkeypatch.setattr("sys.stdin", Terminal("y\n"))
    assert run("break-lease", "orders") == 0
    assert lease_of(aws) is None
    assert "lease_broken" in aws.history_kinds()
    assert run("break-lease", "orders", "--json") == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["outcome"] == "ignored"


def test_break_lease_leaves_a_lease_taken_since_alone(cli_on_sim_clock: Sandbox) -> None:
    aws = cli_on_sim_clock
    build_cluster(aws)
    table = aws.service.deps.table
    table.acquire_lease("orders", "old-run", aws.clock.now(), 90)
    table.release_lease("orders", "old-run")
    table.acquire_lease("orders", "new-run", aws.clock.now(), 90)
    result = aws.service.controls.break_lease(aws.service.cluster("orders"), "old-run", "alice")
    assert result.outcome == "ignored" and lease_of(aws)[0] == "new-run"


# -- rails: ask first, --yes for scripts ------------------------------------------------------------

DANGEROUS = [
    ("failover", "orders", "--allow-healthy-primary"),
    ("switchover", "orders"),
    ("drill", "orders"),
    ("replicas", "orders", "remove", "orders-db-r2"),
]


@pytest.mark.parametrize("command", DANGEROUS, ids=lambda c: c[0])
def test_dangerous_commands_refuse_without_yes_when_nobody_can_answer(cli_on_sim_clock: Sandbox, capsys: Any, tmp_path: Path, command: tuple[str, ...]) -> None:
    aws = cli_on_sim_clock
    build_cluster(aws, {"orders-db-r1": ("us-east-1b", 1.0), "orders-db-r2": ("us-east-1c", 2.0), "orders-db-r3": ("us-east-1a", 3.0)})
    ids = lambda: sorted(r["DBInstanceIdentifier"] for r in aws.replicas_of("orders-db"))  # noqa: E731
    writer, replicas = aws.writer_targets(), ids()
    os.chdir(tmp_path)
    assert run(*command) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) <= 3 and "pass --yes to confirm" in err and "not a terminal" in err  # drill: its two warnings first
    assert aws.promotions() == ["orders-db"] and aws.writer_targets() == writer and ids() == replicas
    assert not [k for k in aws.history_kinds() if k.endswith(("started", "removed"))]


def test_failover_on_a_terminal_shows_the_plan_and_promotes_the_replica_confirmed(cli_on_sim_clock: Sandbox, capsys: Any, monkeypatch: Any) -> None:
    aws = cli_on_sim_clock
    build_cluster(aws)
    set_status("orders-db", "failed")
    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    assert run("failover", "orders") == 1
    err = capsys.readouterr().err
    assert "plan (dry run: nothing changed)" in err and "promote orders-db-r2" in err and "fail orders over: promote orders-db-r2?" in err
    assert "not confirmed: nothing was changed" in err
    assert aws.promotions() == ["orders-db"] and aws.state().workflow is None
    monkeypatch.setattr("sys.stdin", Terminal("y\n"))
    assert run("failover", "orders") == 0
    assert aws.state().primary == "orders-db-r2"


def test_a_refused_plan_is_shown_and_nothing_is_asked(cli_on_sim_clock: Sandbox, capsys: Any, monkeypatch: Any) -> None:
    aws = cli_on_sim_clock
    build_cluster(aws)
    monkeypatch.setattr("sys.stdin", Terminal(""))  # an EOF if it asked
    assert run("failover", "orders") == 3
    err = capsys.readouterr().err
    assert "risks two writers" in err and "--allow-healthy-primary" in err and "?" not in err.splitlines()[-1]


def test_a_drill_says_its_cooldown_and_lost_writes_before_it_starts(cli_on_sim_clock: Sandbox, capsys: Any, monkeypatch: Any, tmp_path: Path) -> None:
    aws = cli_on_sim_clock
    build_cluster(aws)
    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    assert run("drill", "orders", "--report-dir", str(tmp_path)) == 1
    err = capsys.readouterr().err
    assert "starts the 600s cooldown: an automatic failover before " in err and "rds-ha ack orders" in err
    assert "the primary keeps accepting writes until it is fenced" in err and "orders-db-r2 is 2s behind now" in err
    assert err.index("cooldown") < err.index("promote orders-db-r2?")  # said before the question
    assert aws.promotions() == ["orders-db"] and not list(tmp_path.iterdir())
    assert run("drill", "orders", "--dry-run", "--report-dir", str(tmp_path)) == 0
    assert "starts the 600s cooldown" in capsys.readouterr().out


# -- one guard per override -------------------------------------------------------------------------


def test_force_is_split_into_one_override_per_guard_each_named_in_history(cli_on_sim_clock: Sandbox, capsys: Any) -> None:
    aws = cli_on_sim_clock
    build_cluster(aws, {"orders-db-r1": ("us-east-1b", 45.0)})
    set_status("orders-db", "failed")
    assert run("failover", "orders", "--force", "--yes") == 2
    assert "--ignore-cooldown, --max-lag SECONDS|any, --allow-healthy-primary" in capsys.readouterr().err
    assert run("failover", "orders", "--yes", "--max-lag", "soon") == 2
    assert "seconds (e.g. 120) or 'any'" in capsys.readouterr().err
    assert run("failover", "orders", "--yes", "--ignore-cooldown") == 3  # the cooldown is not the lag guard
    assert "lag 45s > max 30s" in capsys.readouterr().out
    assert run("failover", "orders", "--yes", "--max-lag", "60") == 0
    assert aws.state().primary == "orders-db-r1"
    started = next(h for h in aws.service.history("orders") if h["kind"] == "failover_started")
    assert "overrides: --max-lag 60" in started["message"]


# -- controls with nothing to change record nothing -----------------------------------------------


def test_pause_resume_and_ack_say_when_there_is_nothing_to_change(cli_on_sim_clock: Sandbox, capsys: Any) -> None:
    aws = cli_on_sim_clock
    build_cluster(aws)
    assert run("resume", "orders") == 0
    assert "not paused; nothing changed" in capsys.readouterr().out
    assert run("ack", "orders") == 0
    assert "has had no failover: nothing is cooling down" in capsys.readouterr().out
    assert run("pause", "orders", "--reason", "storage maintenance") == 0
    assert run("pause", "orders", "--reason", "something else") == 0
    assert "already paused by" in capsys.readouterr().out
    assert aws.state().paused.reason == "storage maintenance"
    assert run("resume", "orders") == 0
    assert "resumed" in capsys.readouterr().out
    assert aws.history_kinds().count("paused") == 1 and aws.history_kinds().count("resumed") == 1
    assert "acknowledged" not in aws.history_kinds()


def test_ack_after_the_cooldown_is_over_records_nothing(cli_on_sim_clock: Sandbox, capsys: Any) -> None:
    aws = cli_on_sim_clock
    build_cluster(aws)
    handler(alarm_event("eventbridge", aws.clock.now()), context())
    assert run("ack", "orders") == 0
    assert "cooldown acknowledged by" in capsys.readouterr().out
    assert run("ack", "orders") == 0
    assert "is already acknowledged; nothing recorded" in capsys.readouterr().out
    assert aws.history_kinds().count("acknowledged") == 1


# -- exit codes and JSON -----------------------------------------------------------------------


def test_reconcile_exits_2_when_route53_fails(cli_on_sim_clock: Sandbox, capsys: Any) -> None:
    from types import SimpleNamespace

    aws = cli_on_sim_clock
    build_cluster(aws)
    aws.set_alarm("OK")

    def refuse(**_: Any) -> Any:  # IAM's answer, before the request reaches (moto's) Route 53
        parsed = {"Error": {"Code": "AccessDenied", "Message": "refused by the test"}, "ResponseMetadata": {"HTTPStatusCode": 403}}
        return SimpleNamespace(status_code=403, headers={}, content=b""), parsed

    r53 = aws.service.deps.route53._r53
    r53.meta.events.register("before-call.route53.ChangeResourceRecordSets", refuse, unique_id="refuse-r53")
    assert run("reconcile") == 2  # the reader record cannot be created
    err = capsys.readouterr().err
    assert "error" in err and "AccessDenied" in err
    r53.meta.events.unregister("before-call.route53.ChangeResourceRecordSets", unique_id="refuse-r53")
    assert run("reconcile") == 0


def _json_lines(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


JSON_COMMANDS: list[tuple[str, ...]] = [
    ("status", "orders"),
    ("check", "orders"),
    ("history", "orders"),
    ("reconcile",),
    ("failover", "orders", "--dry-run"),
    ("failover", "orders", "--yes"),
    ("switchover", "orders", "--dry-run"),
    ("drill", "orders", "--dry-run"),
    ("pause", "orders"),
    ("resume", "orders"),
    ("ack", "orders"),
    ("break-lease", "orders"),
    ("replicas", "orders", "add"),
    ("replicas", "orders", "remove", "orders-db-r1", "--yes"),
    ("multi-az", "orders", "on"),
    ("alarms", "render", "orders"),
]


@pytest.mark.parametrize("command", JSON_COMMANDS, ids=" ".join)
def test_every_command_answers_in_json(cli_on_sim_clock: Sandbox, capsys: Any, command: tuple[str, ...]) -> None:
    aws = cli_on_sim_clock
    build_cluster(aws)
    aws.set_alarm("OK")
    capsys.readouterr()
    code = run(*command, "--json")
    captured = capsys.readouterr()
    assert code in {0, 3}, captured.err
    found = _json_lines(captured.out)  # stdout is JSON and nothing else
    assert found, command
    shape: Callable[[Any], bool] = lambda d: isinstance(d, (dict, list))  # noqa: E731
    assert all(shape(d) for d in found)


def test_apply_answers_in_json(cli_on_sim_clock: Sandbox, capsys: Any, tmp_path: Path) -> None:
    from rds_ha.local import sandbox

    aws = cli_on_sim_clock
    path = tmp_path / "fleet.yaml"
    path.write_text(sandbox.create_fleet(aws.clients, 2, aws.clock.now()))
    assert run("apply", "-f", str(path), "--json") == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["outcome"] == "done" and len(answer["applied"]) == 2 and answer["created_table"] is False


# -- regions and the state table: one line, exit 2 ---------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [("--region", "us-esat-1", "status"), ("replicas", "orders", "add", "--region", "eu-nowhere-1")],
    ids=["global", "replicas-add"],
)
def test_a_typod_region_is_one_line_and_exit_2(aws: Sandbox, capsys: Any, monkeypatch: Any, args: tuple[str, ...]) -> None:
    build_cluster(aws)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")  # --region sets it for this process; the fixture restores it
    replicas = aws.replicas_of("orders-db")
    assert run(*args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown AWS region" in err and "internal error" not in err, err
    if args[0] == "--region":
        assert "did you mean us-east-1?" in err
    assert len(aws.replicas_of("orders-db")) == len(replicas)


def test_aws_region_is_honoured_and_a_missing_table_says_what_to_do(aws: Sandbox, capsys: Any, monkeypatch: Any) -> None:
    build_cluster(aws)  # the state table is in us-east-1
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-west-2")  # as the AWS CLI does, AWS_REGION wins
    assert run("status") == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: no state table rds-ha-test in us-west-2: run rds-ha apply -f FILE to create it (or set RDS_HA_TABLE, --table, --region)"
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    assert run("status", "orders", "--json") == 0
