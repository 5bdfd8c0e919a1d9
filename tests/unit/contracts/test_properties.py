"""Hypothesis: encode -> decode is the identity for every envelope kind, and the
byte-level depth scan agrees with a real parser."""

from __future__ import annotations

import json
import string
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from relayna.contracts import (
    BatchTaskEnvelope,
    StatusEvent,
    TaskEnvelope,
    WorkflowEnvelope,
    decode,
    encode,
    ensure_event_id,
)
from relayna.contracts._limits import exceeds_depth

IDENT_CHARS = string.ascii_letters + string.digits + "_:@/+=-"
identifiers = st.text(IDENT_CHARS, min_size=1, max_size=40)
optional_ids = st.none() | identifiers
texts = st.text(st.characters(blacklist_categories=["Cs"]), max_size=20)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**100), max_value=2**100)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=20,
)
objects = st.dictionaries(texts, json_values, max_size=5)
datetimes = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(9999, 1, 1), timezones=st.just(UTC)
)
priorities = st.none() | st.integers(0, 255)
extras = st.dictionaries(st.sampled_from(["tenant", "x_custom", "extra", "trace"]), json_values)

tasks = st.builds(
    TaskEnvelope,
    task_id=identifiers,
    payload=objects,
    created_at=datetimes,
    service=st.none() | texts,
    task_type=st.none() | texts,
    correlation_id=optional_ids,
    priority=priorities,
    spec_version=st.sampled_from(["1.0", "2"]),
    extra=extras,
)
batches = st.builds(
    BatchTaskEnvelope,
    batch_id=identifiers,
    tasks=st.lists(tasks, min_size=1, max_size=3),
    meta=objects,
    created_at=datetimes,
    extra=extras,
)
statuses = st.builds(
    StatusEvent,
    task_id=identifiers,
    status=st.sampled_from(["queued", "processing", "completed", "failed"]),
    timestamp=datetimes,
    message=st.none() | texts,
    meta=objects,
    result=st.none() | objects,
    correlation_id=optional_ids,
    event_id=optional_ids,
    service=st.none() | texts,
    extra=extras,
)
workflows = st.builds(
    WorkflowEnvelope,
    task_id=identifiers,
    stage=identifiers,
    message_id=identifiers,
    correlation_id=optional_ids,
    origin_stage=optional_ids,
    parent_message_id=optional_ids,
    action=st.none() | texts,
    payload=objects,
    meta=objects,
    priority=priorities,
    extra=extras,
)


@settings(max_examples=150, deadline=None)
@given(tasks)
def test_task_round_trip(task: TaskEnvelope) -> None:
    assert decode(encode(task), TaskEnvelope) == task


@settings(max_examples=75, deadline=None)
@given(batches)
def test_batch_round_trip(batch: BatchTaskEnvelope) -> None:
    assert decode(encode(batch), BatchTaskEnvelope) == batch


@settings(max_examples=150, deadline=None)
@given(statuses)
def test_status_round_trip(event: StatusEvent) -> None:
    decoded = decode(encode(event), StatusEvent)
    assert decoded == ensure_event_id(event)


@settings(max_examples=150, deadline=None)
@given(workflows)
def test_workflow_round_trip(message: WorkflowEnvelope) -> None:
    decoded = decode(encode(message), WorkflowEnvelope)
    expected = message.correlation_id or message.task_id
    assert decoded.correlation_id == expected
    assert decoded == WorkflowEnvelope(**{**_fields(message), "correlation_id": expected})


def _fields(obj: Any) -> dict[str, Any]:
    return {a.name: getattr(obj, a.name) for a in type(obj).__attrs_attrs__}


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(json_values, st.integers(1, 6), st.booleans())
def test_depth_scan_matches_parser(value: Any, limit: int, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert exceeds_depth(text, limit) == (_depth(value) > limit)
