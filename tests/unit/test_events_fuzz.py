"""Any JSON value at all: the parser returns triggers or raises InvalidEventError, nothing else."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from rds_ha.core.errors import InvalidEventError
from rds_ha.events import parse_alarm_event
from rds_ha.local.samples import alarm_event

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
SAMPLES = [alarm_event(shape, datetime(2026, 11, 23, 10, 0, tzinfo=UTC)) for shape in ("eventbridge", "sns", "lambda-action")]


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += _paths(value, (*prefix, index))
    return out


def _parse(event: Any) -> None:
    try:
        triggers = parse_alarm_event(event)
    except InvalidEventError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert triggers and all(t.alarm_name for t in triggers)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_arbitrary_json_is_a_trigger_or_a_clear_error(event: Any) -> None:
    _parse(event)


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(range(len(SAMPLES))), st.data(), json_values)
def test_valid_events_with_one_field_replaced_are_a_trigger_or_a_clear_error(which: int, data: st.DataObject, value: Any) -> None:
    event = copy.deepcopy(SAMPLES[which])
    path = data.draw(st.sampled_from(_paths(event)[1:]))
    node = event
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    _parse(event)
