"""Any JSON value at all: the parser returns triggers or raises InvalidEventError, nothing else."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from rds_ha.core.errors import InvalidEventError
from rds_ha.events import parse_alarm_event, parse_rds_event
from rds_ha.local.samples import RDS_MESSAGES, alarm_event, rds_event

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


RDS_SAMPLES = [rds_event(event_id, "orders-db-r1", datetime(2026, 11, 23, 10, 0, tzinfo=UTC)) for event_id in RDS_MESSAGES]


def _mutate(event: Any, data: st.DataObject, value: Any) -> Any:
    path = data.draw(st.sampled_from(_paths(event)[1:]))
    node = event
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return event


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
    _parse(_mutate(copy.deepcopy(SAMPLES[which]), data, value))


def _parse_rds(event: Any) -> None:
    try:
        parsed = parse_rds_event(event)
    except InvalidEventError as exc:
        assert str(exc) and "\n" not in str(exc) and len(str(exc)) < 600
        return
    assert parsed.instance and parsed.region and parsed.event_id.startswith("RDS-EVENT-")


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_arbitrary_json_is_an_rds_event_or_a_clear_error(event: Any) -> None:
    _parse_rds(event)


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(range(len(RDS_SAMPLES))), st.data(), json_values)
def test_rds_events_with_one_field_replaced_are_an_event_or_a_clear_error(which: int, data: st.DataObject, value: Any) -> None:
    _parse_rds(_mutate(copy.deepcopy(RDS_SAMPLES[which]), data, value))
