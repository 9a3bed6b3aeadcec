"""The probe's verdicts and the failover's use of them, without servers: the rules an operator relies on."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta

import pytest

from rds_ha.core.config import ClusterConfig, ProbeConfig
from rds_ha.core.models import EngineReading
from rds_ha.core.planner import decide_failover
from rds_ha.probe.judge import judge
from rds_ha.probe.model import Outcome, PrimaryCheck, ReplicaCheck

from .topo import NOW, cluster, inst, request, topo

ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds-ha/orders-AbCdEf"


def _primary(position: float = 1000.0, **kw: object) -> Outcome:
    return Outcome("db", 0.01, primary=PrimaryCheck(writable=True, position=position, **kw))  # type: ignore[arg-type]


def _down(kind: str = "down") -> Outcome:
    return Outcome("db", 1.0, error="connection refused", error_kind=kind)  # type: ignore[arg-type]


def _pg_replica(iid: str, replayed: float, received: float | None = None, since: float | None = 0.0) -> Outcome:
    received = replayed if received is None else received
    check = ReplicaCheck(replicating=True, position=replayed, received=received, since_last_replay=since)
    return Outcome(iid, 0.01, replica=check)


def _my_replica(iid: str, file: str, pos: int, io: bool = True, sql: bool = True, behind: float | None = 0.0, read_pos: int | None = None) -> Outcome:
    from rds_ha.probe.engines import binlog_position

    executed, read = binlog_position(file, pos), binlog_position(file, read_pos if read_pos is not None else pos)
    check = ReplicaCheck(
        replicating=True,
        position=executed,
        received=read,
        seconds_behind=behind,
        receiving=io,
        applying=sql,
        exec_file=file,
        exec_offset=pos,
        note=f"IO {io}, SQL {sql}",
    )
    return Outcome(iid, 0.01, replica=check)


def test_an_idle_postgres_source_is_not_lag() -> None:
    # Nothing committed for 5 minutes: now() - pg_last_xact_replay_timestamp() says 300 s, yet nothing is pending.
    sample = judge("orders", NOW, "postgres", _primary(5000), [_pg_replica("r1", 5000, since=300.0)])
    assert (sample.replicas[0].lag_seconds, sample.replicas[0].lag_bytes) == (0.0, 0.0)


def test_postgres_wal_received_but_not_replayed_is_lag_in_seconds_and_bytes() -> None:
    sample = judge("orders", NOW, "postgres", _primary(5000), [_pg_replica("r1", 3000, received=4000, since=12.0)])
    assert (sample.replicas[0].lag_seconds, sample.replicas[0].lag_bytes) == (12.0, 2000.0)


def test_primary_down_is_unhealthy_and_replicas_are_ranked_against_the_furthest() -> None:
    sample = judge("orders", NOW, "postgres", _down(), [_pg_replica("r1", 1000), _pg_replica("r2", 400)])
    assert sample.primary_healthy is False
    assert [(v.instance, v.broken, v.lag_bytes) for v in sample.replicas] == [("r1", False, 0.0), ("r2", False, 600.0)]


@pytest.mark.parametrize("replica_answers", [False, True])
def test_a_probe_that_reaches_nothing_or_fails_to_log_in_does_not_judge(replica_answers: bool) -> None:
    unreachable = Outcome("r1", 1.0, error="timeout", error_kind="down")
    if replica_answers:  # the replica answers, but the primary refused the probe's password
        sample = judge("orders", NOW, "postgres", _down("auth"), [_pg_replica("r1", 10)])
        assert sample.probe_errors == ("db: connection refused",)
    else:
        sample = judge("orders", NOW, "postgres", _down(), [unreachable])
    assert sample.primary_healthy is None


def test_mysql_bytes_behind_count_across_binlog_files() -> None:
    from rds_ha.probe.engines import binlog_position

    head = binlog_position("mysql-bin-changelog.000003", 100)
    primary = _primary(head or 0, binlogs=(("mysql-bin-changelog.000001", 1000), ("mysql-bin-changelog.000002", 500), ("mysql-bin-changelog.000003", 100)))
    sample = judge("orders", NOW, "mysql", primary, [_my_replica("r1", "mysql-bin-changelog.000001", 900), _my_replica("r2", "mysql-bin-changelog.000003", 60)])
    assert [v.lag_bytes for v in sample.replicas] == [100 + 500 + 100, 40]


def test_mysql_replication_broken_rules() -> None:
    # The source is down: the IO thread reconnecting is expected, not broken; caught up means 0 s.
    waiting = judge("orders", NOW, "mariadb", _down(), [_my_replica("r1", "b.000001", 50, io=False, behind=None)])
    assert (waiting.replicas[0].broken, waiting.replicas[0].lag_seconds) == (False, 0.0)
    # The source answers, but this replica does not receive from it: broken.
    cut = judge("orders", NOW, "mariadb", _primary(), [_my_replica("r1", "b.000001", 50, io=False, behind=None)])
    assert cut.replicas[0].broken is True
    # The apply thread stopped (an error, or STOP SLAVE SQL_THREAD): broken whatever the source does.
    for primary in (_primary(), _down()):
        stopped = judge("orders", NOW, "mariadb", primary, [_my_replica("r1", "b.000001", 50, sql=False, behind=None)])
        assert stopped.replicas[0].broken is True and "apply stopped" in stopped.replicas[0].reason


# -- the failover's use of the readings ---------------------------------------------------------------


def _probed(**failover: object) -> ClusterConfig:
    return cluster(**failover).model_copy(update={"probe": ProbeConfig(secret_arn=ARN)})


def _reading(broken: bool = False, seconds: float | None = 0.0, lag_bytes: float | None = 0.0, age: float = 5) -> EngineReading:
    return EngineReading(at=NOW - timedelta(seconds=age), broken=broken, lag_seconds=seconds, lag_bytes=lag_bytes)


def test_the_replica_with_the_most_data_wins_over_cloudwatchs_least_lag() -> None:
    t = topo(inst("db"), inst("r1", "db"), inst("r2", "db"), lag={"r1": 0, "r2": 5}, cfg=_probed())
    t = replace(t, engine={"r1": _reading(seconds=1, lag_bytes=8192), "r2": _reading(seconds=0, lag_bytes=0)})
    plan = decide_failover(t, request())
    assert plan.chosen == "r2" and "most data" in plan.reason


def test_a_broken_replica_is_never_promoted_even_forced() -> None:
    t = topo(inst("db"), inst("r1", "db"), lag={"r1": 0}, cfg=_probed())
    t = replace(t, engine={"r1": _reading(broken=True)})
    for lag_limit in (None, math.inf):  # --max-lag any does not make it a candidate
        plan = decide_failover(t, request(max_lag_seconds=lag_limit))
        assert plan.outcome == "blocked" and "replication broken (SQL probe" in plan.reason


def test_an_idle_postgres_source_does_not_block_the_failover_and_the_disagreement_is_said() -> None:
    t = topo(inst("db"), inst("r1", "db"), lag={"r1": 300}, cfg=_probed())
    assert decide_failover(t, request()).outcome == "blocked"  # CloudWatch alone: 300 s > 30 s
    plan = decide_failover(replace(t, engine={"r1": _reading(seconds=0)}), request())
    assert plan.outcome == "start" and plan.chosen == "r1"
    assert "CloudWatch ReplicaLag 300s disagrees with the SQL probe's 0s" in plan.candidates[0].reason


def test_a_stale_probe_reading_is_not_used() -> None:
    t = topo(inst("db"), inst("r1", "db"), lag={"r1": 300}, cfg=_probed())
    plan = decide_failover(replace(t, engine={"r1": _reading(seconds=0, age=31)}), request())  # probe.max_age_seconds 30
    assert plan.outcome == "blocked" and "lag 300s > max 30s" in plan.reason


def test_probe_config_needs_exactly_one_credential_and_tls_for_iam() -> None:
    from pydantic import ValidationError

    for bad in ({}, {"secret_arn": ARN, "iam_user": "probe"}, {"iam_user": "probe", "tls": "disable"}, {"secret_arn": ARN, "tls": "insecure"}):
        with pytest.raises(ValidationError):
            ProbeConfig.model_validate(bad)
    with pytest.raises(ValidationError, match="twice interval_seconds"):
        ProbeConfig.model_validate({"secret_arn": ARN, "interval_seconds": 20, "max_age_seconds": 30})


# -- the replicas as witnesses (probe.direct_failover) ------------------------------------------------


def _witness(iid: str, receiving: bool, silent_for: float | None = 1.0) -> Outcome:
    check = ReplicaCheck(replicating=True, position=900.0, received=900.0, since_last_replay=1.0, receiving=receiving, since_last_message=silent_for)
    return Outcome(iid, 0.01, replica=check)


def test_a_primary_is_confirmed_down_only_when_every_replica_that_answers_lost_it_too() -> None:
    unanswered = Outcome("r3", 1.0, error="timeout", error_kind="down")
    dead = judge("orders", NOW, "postgres", _down(), [_witness("r1", receiving=False), _witness("r2", receiving=False), unanswered])
    assert dead.primary_healthy is False and dead.confirmed_down and dead.lost_by == ("r1", "r2")
    assert "confirmed by r1, r2" in dead.primary_reason
    # One witness of two, the other unreachable (the probe and r1 cut off together?): not a majority.
    minority = judge("orders", NOW, "postgres", _down(), [_witness("r1", receiving=False), Outcome("r2", 1.0, error="timeout", error_kind="down")])
    assert minority.primary_healthy is False and not minority.confirmed_down and "not a majority" in minority.primary_reason
    # A cut between the probe and the primary: a replica still streams from it.
    cut = judge("orders", NOW, "postgres", _down(), [_witness("r1", receiving=False), _witness("r2", receiving=True)])
    assert cut.primary_healthy is False and not cut.confirmed_down and cut.streaming == ("r2",)
    assert "r2 still receive(s) from it" in cut.primary_reason
    # Nothing answers: the probe withholds its judgement, so nothing is confirmed.
    alone = judge("orders", NOW, "postgres", _down(), [unanswered])
    assert alone.primary_healthy is None and not alone.confirmed_down


def test_a_read_only_primary_or_one_its_replicas_still_hear_is_never_confirmed_down() -> None:
    read_only = Outcome("db", 0.01, primary=PrimaryCheck(writable=False, position=1000.0))
    sample = judge("orders", NOW, "mysql", read_only, [_witness("r1", receiving=False)])
    assert sample.primary_healthy is False and not sample.confirmed_down  # it answers: reported, not failed over
    # A black-holed primary: the receiver still says streaming, but has heard nothing for longer than the silence bound.
    silent = judge("orders", NOW, "postgres", _down(), [_witness("r1", receiving=True, silent_for=45.0)], silence_seconds=30)
    assert silent.confirmed_down and silent.lost_by == ("r1",)
    heard = judge("orders", NOW, "postgres", _down(), [_witness("r1", receiving=True, silent_for=12.0)], silence_seconds=30)
    assert not heard.confirmed_down and heard.streaming == ("r1",)
