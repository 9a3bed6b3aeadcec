"""Reader set (lag with hysteresis), replica scaling and Multi-AZ desired state: pure planner."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from rds_ha.core.actions import ChangeRecords, CreateReplica, DeleteInstance, ModifyMultiAz
from rds_ha.core.config import ClusterConfig
from rds_ha.core.models import ClusterState, LagReading, MultiAzChoice, Record, Topology
from rds_ha.core.planner import plan_scale, plan_steady, reader_verdicts

from .topo import NOW, cluster, inst, topo


def reading(seconds: float, ago: float = 30) -> LagReading:
    return LagReading(seconds, NOW - timedelta(seconds=ago))


def in_reader(*ids: str) -> tuple[Record, ...]:
    return tuple(Record("r.example", f"{i}.rds", 5, i, 1) for i in ids)


def with_lag(t: Topology, **lag: float) -> Topology:
    return replace(t, recent_lag={k: reading(v) for k, v in lag.items()})


def reader_after(t: Topology) -> set[str]:
    """The reader set once the steady plan's changes are applied."""
    current = {r.set_identifier for r in t.reader}
    for action in plan_steady(t).actions:
        if isinstance(action, ChangeRecords) and action.role == "reader":
            for change in action.changes:
                (current.discard if change.action == "DELETE" else current.add)(change.record.set_identifier)
    return current


def test_lagging_replica_leaves_the_reader_set_and_returns_only_once_caught_up() -> None:
    base = topo(inst("db"), inst("r1", "db"), inst("r2", "db"), reader=in_reader("r1", "r2"))
    assert reader_after(with_lag(base, r1=1, r2=2)) == {"r1", "r2"}
    # r1 falls 45 s behind (max 30): out. Between the two limits (20 s > rejoin 15): still out.
    out = replace(with_lag(base, r1=45, r2=2), reader=in_reader("r2"))
    assert reader_after(with_lag(base, r1=45, r2=2)) == {"r2"}
    assert reader_after(replace(out, recent_lag={"r1": reading(20), "r2": reading(2)})) == {"r2"}
    # Caught up (<= 15 s): back in.
    assert reader_after(replace(out, recent_lag={"r1": reading(10), "r2": reading(2)})) == {"r1", "r2"}


def test_a_member_near_the_limit_does_not_flap() -> None:
    t = with_lag(topo(inst("db"), inst("r1", "db"), reader=in_reader("r1")), r1=25)
    assert reader_after(t) == {"r1"}
    verdict = reader_verdicts(t, t.instances["db"], frozenset())[0]
    assert verdict.serving and verdict.reason == "lag 25s <= reader_max_lag 30s"


def test_no_replica_qualifying_points_the_reader_at_the_primary() -> None:
    t = with_lag(topo(inst("db"), inst("r1", "db"), inst("r2", "db", status="stopped"), reader=in_reader("r1", "r2")), r1=300)
    assert reader_after(t) == {"db"}
    reasons = {v.instance: v.reason for v in reader_verdicts(t, t.instances["db"], frozenset())}
    assert reasons == {"r1": "lag 300s > reader_max_lag 30s", "r2": "status stopped"}


def test_broken_replication_and_missing_data() -> None:
    t = topo(inst("db"), inst("r1", "db"), inst("r2", "db"), inst("r3", "db"), reader=in_reader("r1", "r2"))
    t = replace(t, recent_lag={"r1": reading(-1)})
    reasons = {v.instance: (v.serving, v.reason) for v in reader_verdicts(t, t.instances["db"], frozenset())}
    assert reasons["r1"] == (False, "replication not active (ReplicaLag -1)")
    assert reasons["r2"] == (True, "no recent ReplicaLag data; kept in")  # a metrics gap does not empty the set
    assert reasons["r3"] == (False, "no ReplicaLag data yet")  # a new replica joins once CloudWatch shows it caught up


def test_replication_stopped_event_keeps_it_out_until_a_newer_reading() -> None:
    state = ClusterState(cluster="orders", primary="db", replication_stopped={"r1": NOW - timedelta(seconds=60)})
    t = topo(inst("db"), inst("r1", "db"), inst("r2", "db"), reader=in_reader("r1", "r2"), state=state)
    stale = replace(t, recent_lag={"r1": reading(0, ago=120), "r2": reading(1)})
    assert reader_after(stale) == {"r2"}
    fresh = replace(t, recent_lag={"r1": reading(0, ago=10), "r2": reading(1)})
    assert reader_after(fresh) == {"r1", "r2"}


def test_reader_changes_are_one_batch() -> None:
    t = with_lag(topo(inst("db"), inst("r1", "db"), inst("r2", "db"), inst("r3", "db"), reader=in_reader("r1", "db")), r1=99, r2=1, r3=1)
    batches = [a for a in plan_steady(t).actions if isinstance(a, ChangeRecords) and a.role == "reader"]
    assert len(batches) == 1 and len(batches[0].changes) == 4  # delete r1 and db, add r2 and r3


def scaling_cfg(**replicas: object) -> ClusterConfig:
    base = cluster()
    return base.model_copy(update={"replicas": base.replicas.model_copy(update=replicas)})


def test_scale_out_adds_one_replica_in_the_least_used_az_with_the_primarys_class() -> None:
    t = with_lag(
        topo(inst("db", az="us-east-1a", instance_class="db.r6g.large"), inst("r1", "db", az="us-east-1b"), inst("r2", "db", az="us-east-1b")), r1=1, r2=1
    )
    t = replace(t, instances={**t.instances, "x": inst("x", az="us-east-1c", tags={})})  # an AZ the cluster's neighbours use
    plan = plan_scale(t, "scale_out", "abc123", "alarm cpu-high")
    assert plan.outcome == "start"
    (create,) = plan.actions
    assert isinstance(create, CreateReplica)
    assert (create.source, create.instance_class, create.scaling) == ("db", "db.r6g.large", "scale_out")
    assert create.tags["rds-ha:cluster"] == "orders"
    assert create.az == "us-east-1c"  # the AZ with the fewest of the cluster's instances
    assert "2 -> 3 replicas" in create.reason


def test_scale_out_stops_at_max_and_respects_its_cooldown() -> None:
    full = topo(inst("db"), *(inst(f"r{n}", "db") for n in range(4)))
    assert plan_scale(full, "scale_out", "x", "t").reason == "4 replica(s), at replicas.max 4"
    state = ClusterState(cluster="orders", primary="db", last_scale_out_at=NOW - timedelta(seconds=100))
    cooling = topo(inst("db"), inst("r1", "db"), state=state)
    plan = plan_scale(cooling, "scale_out", "x", "t")
    assert plan.outcome == "refused" and plan.reason == "scale-out cooldown: last one 100s ago, cooldown 900s"
    # The other direction has its own cooldown.
    assert plan_scale(replace(cooling, state=state), "scale_in", "x", "t").reason == "1 replica(s), at replicas.min 2"


def test_scale_in_never_removes_the_best_candidate_and_prefers_the_most_lagging() -> None:
    t = with_lag(topo(inst("db"), inst("r1", "db"), inst("r2", "db"), inst("r3", "db")), r1=1, r2=20, r3=5)
    t = replace(t, reader=in_reader("r1", "r2", "r3"))
    plan = plan_scale(t, "scale_in", "x", "alarm cpu-low")
    # It leaves the reader set first, then is deleted: DNS never names a deleted instance.
    dns, delete = plan.actions
    assert isinstance(dns, ChangeRecords) and [(c.action, c.record.set_identifier) for c in dns.changes] == [("DELETE", "r2")]
    assert isinstance(delete, DeleteInstance) and delete.instance == "r2" and delete.scaling == "scale_in"
    assert "r1 kept as the failover candidate" in delete.reason
    # Equal lag: the newest goes first; the best candidate (least lag) never.
    newer = {"r2": NOW - timedelta(days=1), "r3": NOW - timedelta(hours=1)}
    t2 = with_lag(topo(inst("db"), inst("r1", "db"), *(inst(i, "db", created=c) for i, c in newer.items())), r1=1, r2=5, r3=5)
    assert plan_scale(t2, "scale_in", "x", "t").actions[-1].instance == "r3"  # type: ignore[attr-defined]


def test_scale_in_stops_at_min_and_never_during_a_failover() -> None:
    t = topo(inst("db"), inst("r1", "db"), inst("r2", "db"))
    assert plan_scale(t, "scale_in", "x", "t").reason == "2 replica(s), at replicas.min 2"
    down = topo(inst("db", status="failed"), inst("r1", "db"), inst("r2", "db"), inst("r3", "db"))
    assert plan_scale(down, "scale_in", "x", "t").outcome == "refused"


def test_multi_az_desired_state_from_config_and_override() -> None:
    cfg = cluster().model_copy(update={"multi_az": True})
    t = with_lag(topo(inst("db"), inst("r1", "db"), inst("r2", "db"), cfg=cfg, reader=in_reader("r1", "r2")), r1=1, r2=1)
    (action,) = [a for a in plan_steady(t).actions if isinstance(a, ModifyMultiAz)]
    assert action.enabled and action.instance == "db" and "config" in action.reason
    override = ClusterState(cluster="orders", primary="db", multi_az=MultiAzChoice(enabled=False, by="alarm x", at=NOW))
    assert not [a for a in plan_steady(replace(t, state=override)).actions if isinstance(a, ModifyMultiAz)]
    # While RDS is modifying the primary, nothing more is asked of it.
    busy = replace(t, instances={**t.instances, "db": inst("db", status="modifying")})
    assert not [a for a in plan_steady(busy).actions if isinstance(a, ModifyMultiAz)]


def test_steady_state_restores_replicas_min() -> None:
    t = with_lag(topo(inst("db"), inst("r1", "db"), reader=in_reader("r1")), r1=1)
    creates = [a for a in plan_steady(t).actions if isinstance(a, CreateReplica)]
    assert len(creates) == 1 and creates[0].scaling is None


def test_cross_region_replicas_are_created_from_the_primarys_arn() -> None:
    cfg = cluster().model_copy(update={"replicas": cluster().replicas.model_copy(update={"cross_region": ()})})
    cfg = ClusterConfig.model_validate(
        {**cfg.model_dump(), "replicas": {"min": 2, "max": 4, "cross_region": [{"region": "us-west-2", "count": 1, "kms_key_id": "alias/dr"}]}}
    )
    t = with_lag(topo(inst("db"), inst("r1", "db"), inst("r2", "db"), cfg=cfg, reader=in_reader("r1", "r2")), r1=1, r2=1)
    (create,) = [a for a in plan_steady(t).actions if isinstance(a, CreateReplica)]
    assert (create.region, create.source, create.source_region, create.kms_key_id) == ("us-west-2", "arn:aws:rds:us-east-1:1:db:db", "us-east-1", "alias/dr")
