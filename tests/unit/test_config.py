"""The config file: the issue's minimum schema works as written; every mistake names key and line."""

from __future__ import annotations

import pytest

from rds_ha.core.config import parse_config
from rds_ha.core.errors import ConfigError

MINIMUM = """\
clusters:
  - name: orders
    region: us-east-1
    primary: orders-db               # DB instance identifier of the current primary
    replicas: {min: 2, max: 4}
    dns: {zone_id: Z0123456789, writer: writer.orders.example.internal, reader: reader.orders.example.internal, ttl: 5}
    failover: {max_lag_seconds: 30, cooldown_seconds: 600}
    alarms:
      failover: [orders-primary-down]  # alarms whose ALARM state means "the primary is down"
"""


def test_minimum_schema_works_as_written() -> None:
    cfg = parse_config(MINIMUM).clusters[0]
    assert (cfg.name, cfg.primary, cfg.replicas.min, cfg.replicas.max) == ("orders", "orders-db", 2, 4)
    assert cfg.dns.ttl == 5 and cfg.failover.max_lag_seconds == 30 and cfg.alarms.failover == ("orders-primary-down",)
    assert cfg.failover.delete_orphans is True and cfg.failover.stop_old_primary is False


def _error(text: str) -> str:
    with pytest.raises(ConfigError) as exc:
        parse_config(text, "orders.yaml")
    return str(exc.value)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("max_lag_seconds: 30", "max_lag_secnds: 30"), "orders.yaml: line 7: clusters[0].failover.max_lag_secnds: unknown key"),
        (("ttl: 5", "ttl: -1"), "line 6: clusters[0].dns.ttl: Input should be greater than or equal to 0"),
        (("min: 2", "min: 5"), "line 5: clusters[0].replicas: min (5) must not exceed max (4)"),
        (("primary: orders-db", "primary: 9orders"), "line 4: clusters[0].primary: '9orders' is not a valid DB instance identifier"),
        (("region: us-east-1", "region: mars"), "line 3: clusters[0].region: String should match pattern"),
        (("min: 2", "min: two"), "line 5: clusters[0].replicas.min: Input should be a valid integer"),
        (("writer: writer.orders.example.internal", "writer: 'not a name'"), "clusters[0].dns.writer: 'not a name' is not a valid DNS name"),
        (("  - name: orders", "  - name: orders\n    name: again"), "line 3: clusters[0].name: duplicate key"),
        (("reader: reader.orders", "reader: writer.orders"), "line 6: clusters[0].dns: reader and writer must be different names"),
        (("ttl: 5}", "ttl: 5, reader_max_lag_seconds: 10, reader_rejoin_lag_seconds: 20}"), "clusters[0].dns: reader_rejoin_lag_seconds must not exceed"),
        (
            ("failover: [orders-primary-down]", "failover: [x]\n      scale_out: [x]"),
            "line 8: clusters[0].alarms: alarm 'x' is mapped to both failover and scale_out",
        ),
        (("max: 4}", "max: 4, cross_region: [{region: us-east-1}]}"), "line 2: clusters[0]: replicas.cross_region names the cluster's own region us-east-1"),
        (
            ("max: 4}", "max: 4, cross_region: [{region: us-west-2, count: 6}]}"),
            "clusters[0].replicas.cross_region[0].count: Input should be less than or equal to 5",
        ),
        (("max: 4}", "max: 4, scale_in_cooldown_seconds: '60'}"), "clusters[0].replicas.scale_in_cooldown_seconds: Input should be a valid integer"),
        (("    alarms:", "    multi_az: maybe\n    alarms:"), "line 8: clusters[0].multi_az: Input should be a valid boolean"),
    ],
)
def test_bad_values_name_the_key_and_line(change: tuple[str, str], expected: str) -> None:
    assert expected in _error(MINIMUM.replace(*change))


def test_missing_required_key() -> None:
    assert "clusters[0].dns: Field required" in _error(
        MINIMUM.replace("    dns: {zone_id: Z0123456789, writer: writer.orders.example.internal, reader: reader.orders.example.internal, ttl: 5}\n", "")
    )


def test_not_yaml_empty_and_wrong_top_level() -> None:
    assert "not valid YAML" in _error("clusters: [")
    assert "empty" in _error("")
    assert "expected a mapping" in _error("- a\n- b\n")


def test_an_alarm_maps_to_one_cluster_only() -> None:
    second = MINIMUM.split("clusters:\n")[1].replace("name: orders", "name: billing")
    assert "mapped to both 'orders' and 'billing'" in _error(MINIMUM + second)


def test_read_capacity_keys_and_their_defaults() -> None:
    text = MINIMUM.replace("max: 4}", "max: 4, cross_region: [{region: us-west-2, kms_key_id: alias/dr}]}") + (
        "      scale_out: [orders-cpu-high]\n      scale_in: [orders-cpu-low]\n    multi_az: true\n"
    )
    cfg = parse_config(text).clusters[0]
    assert cfg.dns.reader_max_lag_seconds == 30 and cfg.dns.reader_rejoin_lag == 15
    assert (cfg.replicas.scale_out_cooldown_seconds, cfg.replicas.scale_in_cooldown_seconds) == (900, 1800)
    assert cfg.regions == ["us-east-1", "us-west-2"] and cfg.replicas.cross_region[0].count == 1
    assert cfg.multi_az is True and cfg.failover.allow_cross_region is False
    assert ("orders-cpu-high", "scale_out") in cfg.alarms.roles()
