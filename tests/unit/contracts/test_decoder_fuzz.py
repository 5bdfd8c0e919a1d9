"""Fuzz every decoder a peer's bytes reach: only typed errors may come out.

The codec boundary promises that nothing a peer sends raises anything but
:class:`ContractError` (issue 26, defect class 1). Each decoder gets bodies
built from hostile JSON (extreme datetimes and offsets, integers far past 64
bits, non-finite floats, lone surrogate escapes, odd unicode, duplicate keys,
deep nesting, truncation) and raw bytes; anything accepted must re-encode.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relayna.consumer._decide import Poison
from relayna.consumer._inbound import (
    InboundBatch,
    InboundStatus,
    InboundTask,
    parse_status,
    parse_task,
)
from relayna.contracts import (
    DEFAULT_LIMITS,
    BatchTaskEnvelope,
    StatusEvent,
    TaskEnvelope,
    WorkflowEnvelope,
    decode,
    decode_task_message,
    dumps,
    encode,
    loads,
)
from relayna.errors import ContractError
from relayna.status import decode_status_body
from relayna.transport import Properties

#: Examples per decoder (the closing note of issue 26 quotes this number).
EXAMPLES = 250

offsets = st.timedeltas(
    min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)
).map(timezone)
extreme_datetimes = st.datetimes(
    min_value=datetime.min, max_value=datetime.max, timezones=st.none() | offsets
)
iso_texts = st.one_of(
    st.sampled_from(
        [
            "0001-01-01T00:00:00+05:00",  # the reported case: OverflowError in astimezone
            "9999-12-31T23:59:59-05:00",
            "0001-01-01T00:00:00+23:59",
            "9999-12-31T23:59:59.999999-23:59",
            "1970-01-01T00:00:00Z",
            "2024-02-30T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "+002024-01-01",
            "2024-W01-1",
            "",
            "Z",
        ]
    ),
    extreme_datetimes.map(datetime.isoformat),
    extreme_datetimes.map(lambda d: d.isoformat(sep=" ", timespec="seconds")),
)
integers = st.integers() | st.sampled_from([2**63, -(2**63) - 1, 2**64, 10**300, -(10**300)])
floats = st.floats(allow_nan=True, allow_infinity=True)
texts = st.text(max_size=24) | st.text(st.characters(categories=["Cs", "Co", "Cc"]), max_size=4)
scalars = st.none() | st.booleans() | integers | floats | texts | iso_texts
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)

FIELDS = {
    TaskEnvelope: ("task_id", "payload", "created_at", "service", "task_type",
                   "correlation_id", "priority", "spec_version", "documentId"),
    BatchTaskEnvelope: ("batch_id", "tasks", "meta", "created_at", "spec_version"),
    StatusEvent: ("task_id", "status", "timestamp", "message", "meta", "result",
                  "correlation_id", "event_id", "service", "spec_version", "documentId"),
    WorkflowEnvelope: ("task_id", "stage", "message_id", "correlation_id", "origin_stage",
                       "parent_message_id", "action", "payload", "meta", "priority", "spec_version"),
}  # fmt: skip
# Mostly valid values where a field is checked early, so that the fuzzer gets
# past the first check to the conversions behind it.
identifiers = st.sampled_from(["t1", "a.b:c", "x" * 256]) | st.sampled_from(
    ["x" * 257, "", "a..b", "é", "a b", 7]
)
words = st.sampled_from(["running", "completed", "failed", "s1"]) | json_values
objects = st.dictionaries(texts, json_values, max_size=3) | json_values
plausible: dict[str, st.SearchStrategy[Any]] = {
    "task_id": identifiers,
    "documentId": identifiers,
    "batch_id": identifiers,
    "stage": identifiers,
    "correlation_id": st.none() | identifiers,
    "event_id": st.none() | identifiers,
    "message_id": identifiers,
    "origin_stage": st.none() | identifiers,
    "parent_message_id": st.none() | identifiers,
    "status": words,
    "spec_version": words,
    "created_at": iso_texts,
    "timestamp": iso_texts,
    "priority": st.integers(-1, 256) | integers,
    "payload": objects,
    "meta": objects,
    "result": st.none() | objects,
}


REQUIRED = {
    TaskEnvelope: ("task_id", "created_at"),
    BatchTaskEnvelope: ("batch_id", "tasks", "created_at"),
    StatusEvent: ("task_id", "status", "timestamp"),
    WorkflowEnvelope: ("task_id", "stage"),
}


def _envelope_dicts(cls: type[Any]) -> st.SearchStrategy[dict[str, Any]]:
    fields = FIELDS[cls]
    optional = {name: plausible.get(name, json_values) for name in fields}
    # Half the time the fields an envelope needs are there (mostly valid), so
    # that decoding reaches the conversions behind the first checks.
    needed = {name: optional.pop(name) for name in REQUIRED[cls] if name in optional}
    plain = st.fixed_dictionaries({}, optional={**needed, **optional}) | st.fixed_dictionaries(
        needed, optional=optional
    )
    if cls is BatchTaskEnvelope:
        tasks = st.lists(_envelope_dicts(TaskEnvelope), max_size=3)
        return st.fixed_dictionaries(
            {"batch_id": identifiers, "tasks": tasks},
            optional={"created_at": iso_texts, "meta": json_values},
        )
    return plain


def _to_bytes(value: Any) -> bytes:
    # The stdlib writes every integer exactly, NaN/Infinity as bare tokens and
    # lone surrogates as \udxxx escapes: all of it must be refused or parsed.
    return json.dumps(value, allow_nan=True).encode()


def _mutations(body: bytes) -> st.SearchStrategy[bytes]:
    return st.sampled_from(
        [
            body,
            body[: max(len(body) // 2, 1)],  # truncated
            body.replace(b"{", b'{"task_id":"dup","task_id":"dup",', 1),  # duplicate keys
            b"[" * 70 + body + b"]" * 70,  # deeper than the limit
            body.replace(b'"', b"'", 2),
        ]
    )


def bodies(cls: type[Any]) -> st.SearchStrategy[bytes]:
    return st.one_of(
        _envelope_dicts(cls).map(_to_bytes).flatmap(_mutations),
        json_values.map(_to_bytes),
        st.binary(max_size=64),
    )


def _only_contract_errors(decoder: Callable[[bytes], Any], body: bytes) -> Any:
    try:
        return decoder(body)
    except ContractError as exc:
        reason = exc.reason  # a machine-readable reason for metrics / DLQ
    assert reason
    return None


FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("cls", list(FIELDS), ids=lambda c: c.__name__)
@FUZZ
@given(data=st.data())
def test_envelope_decoders_raise_only_contract_errors(cls: type[Any], data: st.DataObject) -> None:
    body = data.draw(bodies(cls))
    envelope = _only_contract_errors(lambda b: decode(b, cls), body)
    if envelope is not None:
        assert type(envelope) is cls
        assert type(decode(encode(envelope), cls)) is cls  # what is accepted re-encodes


@FUZZ
@given(body=bodies(TaskEnvelope) | bodies(BatchTaskEnvelope))
def test_task_message_decoder_raises_only_contract_errors(body: bytes) -> None:
    message = _only_contract_errors(decode_task_message, body)
    if message is not None:
        encode(message)


@FUZZ
@given(body=bodies(StatusEvent))
def test_status_body_decoder_raises_only_contract_errors(body: bytes) -> None:
    event = _only_contract_errors(decode_status_body, body)
    if event is not None:
        assert decode_status_body(dumps(event)) == event  # stored form decodes the same


@FUZZ
@given(body=bodies(StatusEvent) | json_values.map(_to_bytes))
def test_loads_raises_only_contract_errors(body: bytes) -> None:
    value = _only_contract_errors(loads, body)
    if value is not None:
        dumps(value)


# -- AMQP headers: every field-table value type, hostile values -------------------------

header_scalars = st.one_of(
    integers,
    floats,
    texts,
    st.binary(max_size=16),
    st.booleans(),
    st.none(),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.sampled_from([Decimal("sNaN"), Decimal("-sNaN"), Decimal("1e999999")]),
    extreme_datetimes,
)
header_values = st.recursive(
    header_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=10,
)
header_names = st.sampled_from(
    ["relayna-retry-attempt", "x-relayna-retry-attempt", "relayna-manual-retry-count",
     "batch_id", "batch_index", "batch_size", "task_id", "traceparent", "tracestate",
     "relayna-manual-retry-from-task-type", "x-death"]
) | texts  # fmt: skip
headers = st.dictionaries(header_names, header_values, max_size=8)
properties = st.builds(
    Properties,
    content_type=st.none() | st.sampled_from(["application/json", "Application/JSON; charset=utf-8",
                                               "text/plain", ""]) | texts,
    content_encoding=st.none() | st.sampled_from(["identity", "gzip", "UTF-8"]) | texts,
    headers=headers,
)  # fmt: skip


@FUZZ
@given(body=bodies(TaskEnvelope) | bodies(BatchTaskEnvelope), props=properties)
def test_task_classifier_returns_a_task_or_poison(body: bytes, props: Properties) -> None:
    parsed = parse_task(body, props, limits=DEFAULT_LIMITS, known_task_types=None)
    assert isinstance(parsed, InboundTask | InboundBatch | Poison)
    if isinstance(parsed, Poison):
        assert parsed.reason


@FUZZ
@given(body=bodies(StatusEvent), props=properties)
def test_status_classifier_returns_a_status_or_poison(body: bytes, props: Properties) -> None:
    parsed = parse_status(body, props, limits=DEFAULT_LIMITS)
    assert isinstance(parsed, InboundStatus | Poison)
