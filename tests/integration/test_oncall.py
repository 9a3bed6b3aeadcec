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


# -- status: one screen that tells the truth ------------------------------------------------------


def status_of(capsys: Any) -> str:
    capsys.readouterr()
    assert run("status", "orders") == 0
    return capsys.readouterr().out


def test_status_is_one_table_then_the_alarms_then_one_verdict(cli_on_sim_clock: Sandbox, capsys: Any) -> None:
    aws = cli_on_sim_clock
    build_cluster(aws, {"orders-db-r1": ("us-east-1b", 3.0), "orders-db-r2": ("us-east-1c", 45.0)})
    aws.set_alarm("OK")
    run("reconcile")
    out = status_of(capsys)
    lines = out.splitlines()
    r1 = next(line for line in lines if line.startswith("orders-db-r1"))
    r2 = next(line for line in lines if line.startswith("orders-db-r2"))
    # The lag column is the reading the reader set and the candidates are judged by (no "-" beside "lag 3s").
    assert "replica" in r1 and "us-east-1b" in r1 and " 3s " in r1 and " in " in r1 and "eligible: lag 3s" in r1
    assert " 45s " in r2 and " out " in r2 and "not eligible: lag 45s > max 30s" in r2
    assert "orders-db-r2 out of the reader set: lag 45s" in out
    assert next(line for line in lines if line.startswith("orders-primary-down")).split()[1:3] == ["failover", "OK"]
    assert lines[-1].startswith("degraded: no replica qualifies") is False  # r1 qualifies
    assert lines[-1] == "healthy: orders-db writable, 2 replica(s), 1 eligible for failover"

    # The primary-down alarm in ALARM is never shown as healthy, even before a failover starts.
    assert run("pause", "orders", "--reason", "maintenance") == 0
    aws.set_alarm("ALARM")
    paused = status_of(capsys).splitlines()[-1]
    assert paused.startswith("paused by ") and "; meanwhile failover alarm orders-primary-down in ALARM since 20" in paused
    assert run("resume", "orders") == 0
    out = status_of(capsys)
    assert next(line for line in out.splitlines() if line.startswith("orders-primary-down")).split()[2] == "ALARM"
    assert out.splitlines()[-1].startswith("degraded: failover alarm orders-primary-down in ALARM since 20")


def test_status_verdict_follows_a_failover_and_a_block(cli_on_sim_clock: Sandbox, capsys: Any) -> None:
    aws = cli_on_sim_clock
    build_cluster(aws)
    set_status("orders-db", "failed")
    aws.fidelity.promote_seconds = 300
    signal_at(aws, 30, signal.SIGTERM)
    assert run("failover", "orders", "--yes") == 143
    aws.extra["unwatch"]()
    verdict = status_of(capsys).splitlines()[-1]
    assert verdict.startswith("failing over: orders-db -> orders-db-r2, ") and "(since 20" in verdict
    assert run("status", "orders", "--json") == 0
    assert json.loads(capsys.readouterr().out)["verdict"] == verdict


def test_status_verdict_says_blocked_and_why(cli_on_sim_clock: Sandbox, capsys: Any) -> None:
    aws = cli_on_sim_clock
    build_cluster(aws, {"orders-db-r1": ("us-east-1b", 45.0), "orders-db-r2": ("us-east-1c", 50.0)})
    set_status("orders-db", "failed")
    handler(alarm_event("eventbridge", aws.clock.now()), context())
    verdict = status_of(capsys).splitlines()[-1]
    assert verdict.startswith("blocked: no replica qualifies for promotion (orders-db-r1: lag 45s > max 30s")
    assert verdict.endswith("; rds-ha history orders)")


def test_status_shows_an_ack_only_while_it_covers_the_last_failover(cli_on_sim_clock: Sandbox, capsys: Any) -> None:
    aws = cli_on_sim_clock
    build_cluster(aws)
    handler(alarm_event("eventbridge", aws.clock.now()), context())
    assert run("ack", "orders") == 0
    line = next(x for x in status_of(capsys).splitlines() if "last failover" in x)
    assert "acknowledged by" in line and "cooldown until" not in line
    # A second failover: the old ack covers nothing, and the new cooldown is shown alone.
    aws.clock.advance(3600)
    set_status("orders-db-r2", "failed")
    assert run("failover", "orders", "--yes", "--max-lag", "any") == 0  # its new replicas have no lag data yet
    line = next(x for x in status_of(capsys).splitlines() if "last failover" in x)
    assert "cooldown until" in line and "acknowledged" not in line
    assert run("status", "orders", "--json") == 0
    assert json.loads(capsys.readouterr().out)["acknowledged"] is None


def test_status_json_keeps_fenced_old_primaries_out_of_replicas_with_their_age_and_cost(cli_on_sim_clock: Sandbox, capsys: Any) -> None:
    aws = cli_on_sim_clock
    build_cluster(aws)
    handler(alarm_event("eventbridge", aws.clock.now()), context())
    aws.clock.advance(7200)
    capsys.readouterr()
    assert run("status", "orders", "--json") == 0
    st = json.loads(capsys.readouterr().out)
    assert "orders-db" not in [r["id"] for r in st["replicas"]]
    (old,) = st["fenced"]
    assert old["id"] == "orders-db" and old["status"] == "available" and old["age_seconds"] >= 7200
    assert old["cost"] == "billed: instance hours and storage"
    row = next(x for x in status_of(capsys).splitlines() if x.startswith("orders-db "))
    assert "fenced" in row and "fenced 2h ago" in row and "billed" in row


def role_tag(aws: Sandbox, instance: str) -> str | None:
    found = aws.instance(instance)
    assert found is not None
    return next((t["Value"] for t in found["TagList"] if t["Key"] == "rds-ha:role"), None)


def test_a_promoted_replica_is_tagged_primary_and_the_old_primary_fenced(cli_on_sim_clock: Sandbox) -> None:
    aws = cli_on_sim_clock
    build_cluster(aws)
    arn = aws.instance("orders-db-r2")["DBInstanceArn"]  # type: ignore[index]
    aws.rds().add_tags_to_resource(ResourceName=arn, Tags=[{"Key": "rds-ha:role", "Value": "replica"}])  # as rds-ha creates it
    handler(alarm_event("eventbridge", aws.clock.now()), context())
    assert aws.state().primary == "orders-db-r2"
    assert role_tag(aws, "orders-db-r2") == "primary" and role_tag(aws, "orders-db") == "fenced"
    assert {role_tag(aws, r["DBInstanceIdentifier"]) for r in aws.replicas_of("orders-db-r2")} == {"replica"}
    # History tells the order the plan and the README tell: the promotion is issued, then the old primary fenced.
    oldest_first = aws.history_kinds()[::-1]  # history reads newest first
    assert oldest_first.index("promote_issued") < oldest_first.index("fenced")


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


def test_failover_dry_run_on_a_healthy_primary_shows_the_refusal_and_each_replicas_verdict(cli_on_sim_clock: Sandbox, capsys: Any) -> None:
    aws = cli_on_sim_clock
    build_cluster(aws, {"orders-db-r1": ("us-east-1b", 12.0), "orders-db-r2": ("us-east-1c", 45.0)})
    aws.set_alarm("OK")
    capsys.readouterr()
    assert run("failover", "orders", "--dry-run") == 3
    out = capsys.readouterr().out
    assert "refused" in out and "--allow-healthy-primary" in out
    assert "orders-db-r1" in out and "eligible: lag 12s <= max 30s" in out
    assert "not eligible: lag 45s > max 30s" in out


def test_switchover_dry_run_judges_the_chosen_row_by_the_switchovers_own_limit(cli_on_sim_clock: Sandbox, capsys: Any) -> None:
    aws = cli_on_sim_clock
    build_cluster(aws, {"orders-db-r1": ("us-east-1b", 3.0), "orders-db-r2": ("us-east-1c", 20.0)}, extra="    switchover: {max_lag_seconds: 1}\n")
    capsys.readouterr()
    assert run("switchover", "orders", "--dry-run") in (0, 3)
    out = capsys.readouterr().out
    assert "lag 3s > switchover.max_lag_seconds 1s: waiting for it to catch up" in out
    row = next(line for line in out.splitlines() if line.startswith("orders-db-r1"))
    assert "lag 3s > switchover.max_lag_seconds 1s; it catches up first" in row and "<= max 30s" not in row


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


def orders_yaml(aws: Sandbox, tmp_path: Path, *, primary: str = "orders-db", alarms: str = "orders-primary-down") -> str:
    from ..builders import CONFIG

    text = CONFIG.format(min=2, zone=aws.zone_id, max_lag=30, cooldown=600, extra_failover="", alarms=alarms, extra="").replace(
        "primary: orders-db", f"primary: {primary}"
    )
    path = tmp_path / "orders.yaml"
    path.write_text(text)
    return str(path)


def test_apply_refuses_a_failover_alarm_that_does_not_exist(cli_on_sim_clock: Sandbox, capsys: Any, tmp_path: Path) -> None:
    aws = cli_on_sim_clock
    build_cluster(aws)
    before = aws.service.deps.table.configs()
    capsys.readouterr()
    assert run("apply", "-f", orders_yaml(aws, tmp_path, alarms="orders-primary-dwon")) == 2
    err = capsys.readouterr().err
    assert "alarms.failover: orders-primary-dwon not found in CloudWatch in us-east-1" in err and "Traceback" not in err
    assert aws.service.deps.table.configs() == before  # nothing stored


def test_the_alarms_are_rendered_from_the_file_before_the_first_apply(aws: Sandbox, capsys: Any, tmp_path: Path) -> None:
    from rds_ha.local import sandbox

    aws.zone_id = sandbox.create_cluster(aws.clients, aws.clock.now(), {"orders-db-r1": ("us-east-1b", 1.0)}, alarms=())
    path = orders_yaml(aws, tmp_path)
    assert run("apply", "-f", path) == 2
    assert "rds-ha alarms render orders -f FILE" in capsys.readouterr().err
    assert run("alarms", "render", "orders", "-f", path) == 0  # no state table yet: read from the file and RDS
    assert capsys.readouterr().out.split() == ["ClusterName=orders", "PrimaryInstanceId=orders-db", "UseHealthProbe=false", "Replica1InstanceId=orders-db-r1"]


def test_reapplying_a_primary_that_does_not_exist_is_refused_and_a_real_one_is_told_truthfully(cli_on_sim_clock: Sandbox, capsys: Any, tmp_path: Path) -> None:
    aws = cli_on_sim_clock
    build_cluster(aws)
    capsys.readouterr()
    assert run("apply", "-f", orders_yaml(aws, tmp_path, primary="shop-db")) == 2
    assert "primary shop-db not found in us-east-1 (rds-ha's primary is orders-db: name it in the file)" in capsys.readouterr().err
    assert aws.state().primary == "orders-db" and "failover_started" not in aws.history_kinds()
    handler(alarm_event("eventbridge", aws.clock.now()), context())
    assert run("apply", "-f", orders_yaml(aws, tmp_path)) == 0
    out = capsys.readouterr()
    assert "the primary is orders-db-r2 (rds-ha failed over to it at 20" in out.out + out.err


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


# -- old primaries: retire, with a final snapshot ---------------------------------------------------


def snapshots_of(aws: Sandbox, instance: str) -> list[str]:
    return [s["DBSnapshotIdentifier"] for s in aws.rds().describe_db_snapshots(DBInstanceIdentifier=instance, SnapshotType="manual")["DBSnapshots"]]


def test_retire_snapshots_then_deletes_a_fenced_old_primary_and_refuses_anything_else(cli_on_sim_clock: Sandbox, capsys: Any) -> None:
    aws = cli_on_sim_clock
    build_cluster(aws)
    handler(alarm_event("eventbridge", aws.clock.now()), context())
    assert aws.state().primary == "orders-db-r2"
    aws.rds().modify_db_instance(DBInstanceIdentifier="orders-db", DeletionProtection=True, ApplyImmediately=True)  # as rds-ha left it
    capsys.readouterr()
    # Never the primary, never a replica; a dry run changes nothing.
    assert run("retire", "orders", "orders-db-r2", "--yes") == 3
    assert "is the cluster's primary: rds-ha retires only fenced old primaries" in capsys.readouterr().out
    replica = aws.replicas_of("orders-db-r2")[0]["DBInstanceIdentifier"]
    assert run("retire", "orders", replica, "--yes") == 3
    assert "is a read replica of orders-db-r2" in capsys.readouterr().out
    assert run("retire", "orders", "orders-db", "--dry-run") == 0
    assert "final snapshot orders-db-retired-" in capsys.readouterr().out and aws.instance("orders-db") is not None
    assert run("retire", "orders", "orders-db") == 2  # nobody to ask here
    assert aws.instance("orders-db") is not None

    assert run("retire", "orders", "orders-db", "--yes", "--json") == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["outcome"] == "done"
    assert aws.instance("orders-db") is None
    (snapshot,) = snapshots_of(aws, "orders-db")
    assert snapshot.startswith("orders-db-retired-")
    assert "orders-db" not in aws.state().fenced and "retired" in aws.history_kinds()
    assert run("status", "orders", "--json") == 0
    assert json.loads(capsys.readouterr().out)["fenced"] == []


def test_retire_of_a_failed_old_primary_needs_no_final_snapshot_said_out_loud(cli_on_sim_clock: Sandbox, capsys: Any) -> None:
    aws = cli_on_sim_clock
    build_cluster(aws)
    set_status("orders-db", "failed")
    handler(alarm_event("eventbridge", aws.clock.now()), context())
    capsys.readouterr()
    assert run("retire", "orders", "orders-db", "--yes") == 3
    assert "RDS deletes an instance in that state only without a final snapshot (pass --no-final-snapshot" in capsys.readouterr().out
    assert aws.instance("orders-db") is not None
    assert run("retire", "orders", "orders-db", "--yes", "--no-final-snapshot") == 0
    assert aws.instance("orders-db") is None and snapshots_of(aws, "orders-db") == []


def test_rds_refuses_a_final_snapshot_of_a_replica_and_of_a_failed_instance(aws: Sandbox) -> None:
    build_cluster(aws)
    with pytest.raises(aws.rds().exceptions.ClientError, match="replica"):
        aws.rds().delete_db_instance(DBInstanceIdentifier="orders-db-r1", FinalDBSnapshotIdentifier="r1-final")
    set_status("orders-db", "failed")
    with pytest.raises(aws.rds().exceptions.ClientError, match="only with SkipFinalSnapshot"):
        aws.rds().delete_db_instance(DBInstanceIdentifier="orders-db", FinalDBSnapshotIdentifier="db-final")
    with pytest.raises(aws.rds().exceptions.ClientError, match="required unless SkipFinalSnapshot"):
        aws.rds().delete_db_instance(DBInstanceIdentifier="orders-db")


def test_reconcile_retires_old_primaries_after_retain_fenced_hours_with_a_final_snapshot(cli_on_sim_clock: Sandbox, capsys: Any) -> None:
    from rds_ha.handlers.reconcile import handler as reconcile_handler

    aws = cli_on_sim_clock
    build_cluster(aws, extra_failover=", retain_fenced_hours: 24")
    handler(alarm_event("eventbridge", aws.clock.now()), context())
    aws.set_alarm("OK")
    aws.clock.advance(23 * 3600)
    reconcile_handler({}, context())
    assert aws.instance("orders-db") is not None  # kept for a day
    capsys.readouterr()
    assert run("status", "orders") == 0
    assert "fenced 23h ago" in capsys.readouterr().out
    aws.clock.advance(3600 + 60)
    reconcile_handler({}, context())
    assert aws.instance("orders-db") is None
    (snapshot,) = snapshots_of(aws, "orders-db")
    assert snapshot.startswith("orders-db-retired-")
    retired = next(h for h in aws.service.history("orders") if h["kind"] == "retired")
    assert "past failover.retain_fenced_hours 24" in retired["message"]
    assert aws.state().primary == "orders-db-r2" and aws.writer_targets() == [aws.endpoint("orders-db-r2")]


def test_a_switchover_shows_its_catch_up_and_each_step_as_it_goes(cli_on_sim_clock: Sandbox, capsys: Any) -> None:
    aws = cli_on_sim_clock
    build_cluster(aws, {"orders-db-r1": ("us-east-1b", 3.0), "orders-db-r2": ("us-east-1c", 20.0)}, extra="    switchover: {max_lag_seconds: 1}\n")
    due = aws.clock.now().timestamp() + 20
    caught_up: list[bool] = []

    def catch_up(now: datetime) -> None:
        if not caught_up and now.timestamp() >= due:
            caught_up.append(True)
            aws.put_lag("orders-db-r1", 0.0, now)

    unwatch = aws.clock.watch(catch_up)
    assert run("switchover", "orders", "--yes") == 0
    unwatch()
    err = capsys.readouterr().err
    assert "catching_up: orders-db-r1 lag 3s > switchover.max_lag_seconds 1s: waiting for it to catch up (" in err
    assert err.count("catching_up:") == 1  # one line while nothing changes, not one per look
    lines = err.splitlines()
    assert any("promote_issued: promotion of orders-db-r1 issued" in line for line in lines)
    assert any("switchover_completed" in line or "completed" in line for line in lines)
    assert aws.state().primary == "orders-db-r1"


def test_one_time_format_in_json_and_history_readable_at_80_columns(cli_on_sim_clock: Sandbox, capsys: Any, monkeypatch: Any) -> None:
    import re

    aws = cli_on_sim_clock
    build_cluster(aws)
    handler(alarm_event("eventbridge", aws.clock.now()), context())
    assert run("pause", "orders", "--reason", "looking") == 0
    capsys.readouterr()
    stamp = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
    any_time = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[^\"]*")
    for command in (("history", "orders", "--json"), ("status", "orders", "--json")):
        assert run(*command) == 0
        text = capsys.readouterr().out
        times = any_time.findall(text)
        assert times and all(stamp.match(t) for t in times), [t for t in times if not stamp.match(t)][:3]
    from rds_ha.cli import main as cli

    monkeypatch.setattr(cli.out, "width", 80)  # an 80-column terminal
    assert run("history", "orders") == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    assert stamp.match(lines[1].split()[0])


def test_retire_refuses_a_standalone_member_that_was_never_fenced(cli_on_sim_clock: Sandbox, capsys: Any) -> None:
    aws = cli_on_sim_clock
    build_cluster(aws)
    aws.rds().promote_read_replica(DBInstanceIdentifier="orders-db-r1")  # by hand: a standalone member, never fenced
    aws.fidelity.settle()
    assert not aws.instance("orders-db-r1").get("ReadReplicaSourceDBInstanceIdentifier")  # type: ignore[union-attr]
    capsys.readouterr()
    assert run("retire", "orders", "orders-db-r1", "--yes") == 3
    assert "orders-db-r1 is not a fenced old primary of orders (no rds-ha:fenced tag)" in capsys.readouterr().out
    assert aws.instance("orders-db-r1") is not None
    assert run("retire", "orders", "orders-nope", "--yes") == 3
    assert "orders-nope not found in us-east-1" in capsys.readouterr().out


def test_a_pause_racing_another_operators_pause_keeps_the_first(cli_on_sim_clock: Sandbox, capsys: Any, monkeypatch: Any) -> None:
    from rds_ha.core.errors import StateConflictError
    from rds_ha.core.models import Marker

    aws = cli_on_sim_clock
    build_cluster(aws)
    table = aws.service.deps.table
    real = table.put_state

    def bob_first(state: Any) -> Any:  # bob's pause lands between alice's read and her write
        monkeypatch.setattr(table, "put_state", real)
        current = table.get_state("orders")
        real(current.model_copy(update={"paused": Marker(by="bob", at=aws.clock.now(), reason="his maintenance")}))
        raise StateConflictError("changed concurrently")

    monkeypatch.setattr(table, "put_state", bob_first)
    capsys.readouterr()
    assert run("pause", "orders", "--reason", "hers") == 0
    assert "already paused by bob" in capsys.readouterr().out
    assert aws.state().paused.by == "bob" and aws.state().paused.reason == "his maintenance"
    assert "paused" not in aws.history_kinds()  # alice's pause recorded nothing


def test_a_signal_while_the_lease_is_being_taken_leaves_no_lease(cli_on_sim_clock: Sandbox, capsys: Any) -> None:
    """SIGTERM right after DynamoDB accepted the lease's conditional write, before the command could hold it
    (issue 28): the CLI says the lease is released, so it must be."""
    aws = cli_on_sim_clock
    build_cluster(aws)
    table = aws.service.deps.table
    real = table.acquire_lease

    def taken_then_signalled(*args: Any, **kwargs: Any) -> bool:
        taken = real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
        return taken

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(table, "acquire_lease", taken_then_signalled)
        assert run("failover", "orders", "--yes") == 143
    assert "lease is released" in capsys.readouterr().err
    assert lease_of(aws) is None
