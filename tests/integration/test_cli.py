"""The CLI as an operator uses it: exit codes, one-line errors, no tracebacks, what changed in AWS."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rds_ha.cli.main import main
from rds_ha.local.moto_fidelity import set_status

from ..builders import ROOT, Sandbox, alarm_event, build_cluster


def run(*args: str) -> int:
    try:
        main(list(args))
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def write(tmp_path: Path, name: str, content: Any) -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def test_status_json_has_primary_and_replicas(aws: Sandbox, capsys: Any) -> None:
    build_cluster(aws)
    assert run("status", "orders", "--json") == 0
    st = json.loads(capsys.readouterr().out)
    assert st["primary"] == "orders-db"
    assert sorted(r["id"] for r in st["replicas"]) == ["orders-db-r1", "orders-db-r2"]


def test_apply_rejects_a_bad_file_and_changes_nothing(aws: Sandbox, tmp_path: Path, capsys: Any) -> None:
    build_cluster(aws)
    bad = (ROOT / "tests" / "unit" / "test_config.py").read_text().split('MINIMUM = """\\\n')[1].split('"""')[0].replace("ttl: 5", "ttl: 5, tll: 6")
    assert run("apply", "-f", write(tmp_path, "bad.yaml", bad)) == 2
    captured = capsys.readouterr()
    assert "line 6: clusters[0].dns.tll: unknown key" in captured.err
    assert "Traceback" not in captured.err + captured.out
    assert aws.service.cluster("orders").dns.zone_id == aws.zone_id  # the applied config is untouched


def test_apply_rejects_a_primary_that_does_not_exist(aws: Sandbox, tmp_path: Path, capsys: Any) -> None:
    build_cluster(aws)
    text = f"""clusters:
  - name: billing
    region: us-east-1
    primary: billing-db
    replicas: {{min: 1, max: 2}}
    dns: {{zone_id: {aws.zone_id}, writer: writer.billing.example.internal}}
"""
    assert run("apply", "-f", write(tmp_path, "billing.yaml", text)) == 2
    assert "primary billing-db not found in us-east-1" in capsys.readouterr().err
    assert [c.name for c in aws.service.clusters()] == ["orders"]


def test_apply_missing_file_is_one_line(aws: Sandbox, capsys: Any) -> None:
    assert run("apply", "-f", "/nonexistent/x.yaml") == 2
    assert "cannot read /nonexistent/x.yaml" in capsys.readouterr().err


def test_dry_run_prints_plan_and_reasons_and_changes_nothing(aws: Sandbox, capsys: Any) -> None:
    build_cluster(aws, {"orders-db-r1": ("us-east-1b", 12.0), "orders-db-r2": ("us-east-1c", 2.0), "orders-db-r3": ("us-east-1b", 90.0)})
    set_status("orders-db", "failed")
    assert run("failover", "orders", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "dry run" in out and "orders-db-r2" in out
    assert "lag 90s > max 30s" in out
    assert "orders-db-r2 is preferred" in out
    assert "promote orders-db-r2" in out
    assert aws.promotions() == ["orders-db"]
    assert aws.state().workflow is None


def test_manual_failover_refuses_a_healthy_primary_then_force_works(aws: Sandbox, capsys: Any) -> None:
    build_cluster(aws)
    assert run("failover", "orders", "--yes") == 3
    assert "risks two writers" in capsys.readouterr().out
    assert aws.promotions() == ["orders-db"]
    assert run("failover", "orders", "--to", "orders-db-r1", "--allow-healthy-primary", "--yes") == 0
    assert aws.writer_targets() == [aws.endpoint("orders-db-r1")]
    assert aws.state().primary == "orders-db-r1"


def test_history_shows_the_blocked_reason(aws: Sandbox, capsys: Any) -> None:
    build_cluster(aws, {"orders-db-r1": ("us-east-1b", 45.0)})
    set_status("orders-db", "failed")
    assert run("failover", "orders", "--yes") == 3
    capsys.readouterr()
    assert run("history", "orders", "--json") == 0
    entries = json.loads(capsys.readouterr().out)
    assert entries[0]["kind"] == "failover_blocked"
    assert "orders-db-r1: lag 45s > max 30s" in entries[0]["message"]
    assert run("status", "orders") == 0
    assert "blocked" in capsys.readouterr().out


def test_unknown_cluster_is_a_clear_error(aws: Sandbox, capsys: Any) -> None:
    build_cluster(aws)
    assert run("status", "nope") == 2
    assert "no cluster named 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("shape", ["eventbridge", "sns", "lambda-action"])
def test_invoke_runs_the_handler_like_sam_local_invoke(aws: Sandbox, tmp_path: Path, capsys: Any, shape: str) -> None:
    build_cluster(aws)
    assert run("invoke", "FailoverFunction", "--event", write(tmp_path, "e.json", alarm_event(shape, aws.clock.now()))) == 0
    assert json.loads(capsys.readouterr().out)["outcome"] == "complete"
    assert aws.writer_targets() == [aws.endpoint("orders-db-r2")]


def test_invoke_ignored_event_exits_zero(aws: Sandbox, tmp_path: Path, capsys: Any) -> None:
    build_cluster(aws)
    ok = write(tmp_path, "ok.json", alarm_event("eventbridge", aws.clock.now(), state="OK", previous="ALARM"))
    assert run("invoke", "FailoverFunction", "--event", ok) == 0
    assert json.loads(capsys.readouterr().out)["outcome"] == "ignored"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("not json", "event is not valid JSON"),
        ({"hello": 1}, "not an alarm event"),
        ({"source": "aws.cloudwatch", "alarmData": {"alarmName": 5}}, "malformed Lambda-action alarm event"),
        ("[" * 100000 + "]" * 100000, "nested too deeply"),
    ],
)
def test_invoke_malformed_event_fails_with_one_line_and_changes_nothing(aws: Sandbox, tmp_path: Path, capsys: Any, content: Any, expected: str) -> None:
    build_cluster(aws)
    assert run("invoke", "FailoverFunction", "--event", write(tmp_path, "bad.json", content)) == 2
    captured = capsys.readouterr()
    assert expected in captured.err
    assert "Traceback" not in captured.err + captured.out
    assert aws.promotions() == ["orders-db"]
    assert aws.writer_targets() == [aws.endpoint("orders-db")]


def test_invoke_unknown_function(aws: Sandbox, tmp_path: Path, capsys: Any) -> None:
    assert run("invoke", "NopeFunction", "--event", write(tmp_path, "e.json", {})) == 2
    assert "has no function 'NopeFunction'" in capsys.readouterr().err


def test_reconcile_builds_the_reader_set_and_reports(aws: Sandbox, capsys: Any) -> None:
    build_cluster(aws)
    aws.set_alarm("OK")
    assert run("reconcile") == 0
    assert "orders: steady" in capsys.readouterr().out
    assert len(aws.reader_targets()) == 2


def test_apply_requires_members_tagged_and_tag_members_tags_them(aws: Sandbox, tmp_path: Path, capsys: Any) -> None:
    build_cluster(aws)
    rds = aws.rds()
    rds.create_db_instance_read_replica(DBInstanceIdentifier="orders-db-r9", SourceDBInstanceIdentifier="orders-db")
    text = (ROOT / "tests" / "unit" / "test_config.py").read_text().split('MINIMUM = """\\\n')[1].split('"""')[0].replace("Z0123456789", aws.zone_id)
    path = write(tmp_path, "orders.yaml", text)
    assert run("apply", "-f", path) == 2
    assert "orders-db-r9 lack the tag rds-ha:cluster" in capsys.readouterr().err
    assert run("apply", "-f", path, "--tag-members") == 0
    assert {"Key": "rds-ha:cluster", "Value": "orders"} in aws.instance("orders-db-r9")["TagList"]


def test_alarms_render_gives_the_protection_stack_parameters(aws: Sandbox, capsys: Any) -> None:
    build_cluster(aws)
    assert run("alarms", "render", "orders") == 0
    out = capsys.readouterr().out.split()
    assert out == [
        "ClusterName=orders",
        "PrimaryInstanceId=orders-db",
        "UseHealthProbe=false",
        "Replica1InstanceId=orders-db-r1",
        "Replica2InstanceId=orders-db-r2",
    ]


# -- read capacity: replicas, Multi-AZ, the reader set in status ------------------------------------


def test_replicas_add_waits_showing_each_aws_status(cli_on_sim_clock: Sandbox, capsys: Any) -> None:
    aws = cli_on_sim_clock
    build_cluster(aws)
    aws.fidelity.create_replica_seconds = 600
    assert run("replicas", "orders", "add", "--az", "us-east-1c", "--wait", "900") == 0
    output = capsys.readouterr().out
    assert "done: create replica orders-" in output and "in us-east-1c" in output
    assert ": creating, single-AZ" in output and ": available, single-AZ" in output
    assert len(aws.replicas_of("orders-db")) == 3


def test_replicas_add_beyond_max_and_remove_below_min_are_refused(cli_on_sim_clock: Sandbox, capsys: Any) -> None:
    aws = cli_on_sim_clock
    build_cluster(aws)
    assert run("replicas", "orders", "remove", "orders-db-r1", "--yes") == 3
    assert "at replicas.min 2" in capsys.readouterr().out
    assert run("replicas", "orders", "add", "--az", "eu-west-1a") == 3
    assert "AZ eu-west-1a is not in us-east-1" in capsys.readouterr().out
    for _ in range(2):
        assert run("replicas", "orders", "add") == 0
    assert run("replicas", "orders", "add") == 3
    assert "at replicas.max 4" in capsys.readouterr().out
    assert len(aws.replicas_of("orders-db")) == 4


def test_replicas_remove_takes_it_out_of_dns_first_and_protects_the_best_candidate(cli_on_sim_clock: Sandbox, capsys: Any) -> None:
    aws = cli_on_sim_clock
    build_cluster(aws, {"orders-db-r1": ("us-east-1b", 1.0), "orders-db-r2": ("us-east-1c", 2.0), "orders-db-r3": ("us-east-1a", 3.0)})
    aws.set_alarm("OK")
    run("reconcile")
    assert run("replicas", "orders", "remove", "orders-db-r1", "--yes") == 3
    assert "best failover candidate" in capsys.readouterr().out
    assert run("replicas", "orders", "remove", "orders-db-r3", "--wait", "60", "--yes") == 0
    output = capsys.readouterr().out
    assert output.index("change reader DNS: DELETE") < output.index("delete replica orders-db-r3")
    assert "orders-db-r3: deleted" in output
    assert aws.endpoint("orders-db-r1") in aws.reader_targets() and len(aws.reader_targets()) == 2


def test_multi_az_on_says_what_aws_does_and_waits_for_it(cli_on_sim_clock: Sandbox, capsys: Any) -> None:
    aws = cli_on_sim_clock
    build_cluster(aws)
    aws.fidelity.multi_az_seconds = 300
    assert run("multi-az", "orders", "on", "--wait", "600") == 0
    output = capsys.readouterr().out
    assert "standby from it" in output and "write latency may rise" in output
    assert "orders-db: modifying, single-AZ" in output and "orders-db: available, Multi-AZ" in output
    assert run("status", "orders") == 0
    assert "multi-az on (desired on, set by rds-ha multi-az by" in capsys.readouterr().out
    assert run("multi-az", "orders", "sideways") == 2


def test_status_shows_the_reader_set_and_why(cli_on_sim_clock: Sandbox, capsys: Any) -> None:
    aws = cli_on_sim_clock
    build_cluster(aws, {"orders-db-r1": ("us-east-1b", 1.0), "orders-db-r2": ("us-east-1c", 45.0)})
    aws.set_alarm("OK")
    run("reconcile")
    capsys.readouterr()
    assert run("status", "orders") == 0
    output = capsys.readouterr().out
    assert next(x for x in output.splitlines() if x.startswith("orders-db-r1")).split()[4:6] == ["1s", "in"]
    assert "orders-db-r2 out of the reader set: lag 45s; rejoins at <= 15s" in output


def test_apply_of_many_clusters_describes_each_region_once(aws: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # RDS throttles its API per account: applying a fleet must not describe the region once per cluster.
    from rds_ha.cli import main as cli
    from rds_ha.local import sandbox

    monkeypatch.setattr(cli, "service_factory", lambda settings: aws.service)
    text = sandbox.create_fleet(aws.clients, 12, aws.clock.now())
    describes = aws.count_calls("rds", "DescribeDBInstances")
    alarms = aws.count_calls("cloudwatch", "DescribeAlarms")
    assert run("apply", "-f", write(tmp_path, "fleet.yaml", text)) == 0
    assert describes[0] == 1
    assert alarms[0] == 1  # every cluster's alarms checked in one DescribeAlarms per region
    assert len(aws.service.clusters()) == 12
