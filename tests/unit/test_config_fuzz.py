"""Any YAML at all: the config parser returns a config or a ConfigError naming where, nothing else."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from rds_ha.core.config import parse_config
from rds_ha.core.errors import ConfigError

from .test_config import MINIMUM

scalars = st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=True) | st.text(max_size=30)
values = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c, max_size=4), max_leaves=15)
BASE = yaml.safe_load(MINIMUM)


def _check(text: str) -> None:
    try:
        parse_config(text, "fuzz.yaml")
    except ConfigError as exc:
        assert str(exc).startswith("fuzz.yaml: ")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text(text: str) -> None:
    _check(text)


@settings(max_examples=300, deadline=None)
@given(values)
def test_arbitrary_yaml_documents(doc: Any) -> None:
    _check(yaml.safe_dump(doc))


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(["name", "region", "primary", "replicas", "dns", "failover", "alarms"]), st.text(max_size=12), values)
def test_the_valid_config_with_one_key_replaced_or_added(key: str, extra: str, value: Any) -> None:
    doc = yaml.safe_load(MINIMUM)
    doc["clusters"][0][key] = value
    _check(yaml.safe_dump(doc))
    doc = yaml.safe_load(MINIMUM)
    doc["clusters"][0].setdefault("failover", {})[extra or "x"] = value
    _check(yaml.safe_dump(doc))
