"""The generated fast paths agree with the full cattrs + attrs path.

The fast structure functions may decline anything, but whatever they accept
must be accepted by the full path and give the identical object; decode's
inline hot path must answer exactly as ``loads`` + ``structure``. The depth
scan's large-body shortcut and the identifier cache must stay exact.
"""

from __future__ import annotations

import json
import pickle
import re
import string
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relayna.contracts import (
    BatchTaskEnvelope,
    StatusEvent,
    TaskEnvelope,
    WorkflowEnvelope,
    _fast,
    _ids,
    decode,
    encode,
    format_datetime,
    is_valid_identifier,
    loads,
    structure,
)
from relayna.contracts._codec import _GENERATED, converter
from relayna.contracts._limits import SMALL_BODY, exceeds_depth
from relayna.errors import ContractError

FIXED_DT = "2025-01-02T03:04:05Z"
ENVELOPES = (TaskEnvelope, BatchTaskEnvelope, StatusEvent, WorkflowEnvelope)

# Good and bad values for every field type, mixed freely across fields.
VALUES = st.sampled_from(
    [
        "a", "task-1", "0" * 64, "ns:t/1+x=y@z_", "a.b", "x" * 256, "x" * 257, "", " ", "a b",
        "a..b", ".a", "a.", "é", "a\n", "done", "1.0", "2025-01-02T03:04:05Z",
        "2025-01-02T05:04:05.5+02:00", "2025-01-02T03:04:05", "2025-01-02T03:04:05+00:00",
        "2025-01-02", "yesterday", "2025-01-02T03:04:05Z" + " " * 60, None, 0, 5, 255, 256, -1,
        2**70, True, False, 1.5, float("nan"), {}, {"k": 1}, [], [1], [{}], [{"task_id": "t", "created_at": "2025-01-02T03:04:05Z"}],
        [{"task_id": "a b"}], [{"task_id": "t", "created_at": "2025-01-02T03:04:05Z"}, 3], datetime(2025, 1, 2, tzinfo=UTC),
        datetime(2025, 1, 2), datetime(2025, 1, 2, tzinfo=timezone(timedelta(hours=-3))),
        datetime(2025, 1, 2, tzinfo=timezone(timedelta(0), "GMT")),
    ]
)  # fmt: skip
FIELD_NAMES = sorted(
    {a.name for cls in ENVELOPES for a in cls.__attrs_attrs__}
    | {"extra", "tenant", "documentId", "unknown"}
)
DATETIME_FIELDS = {"created_at", "timestamp"}


BASES: dict[type[Any], dict[str, Any]] = {
    TaskEnvelope: {"task_id": "t-1", "payload": {"k": 1}, "service": "s", "priority": 3},
    BatchTaskEnvelope: {"batch_id": "b-1", "tasks": [{"task_id": "t", "created_at": FIXED_DT}]},
    StatusEvent: {"task_id": "t-1", "status": "done", "message": "m", "event_id": "e" * 64},
    WorkflowEnvelope: {"task_id": "t-1", "stage": "plan", "action": "go", "priority": 0},
}


@st.composite
def wire_dicts(draw: st.DrawFn, cls: type[Any]) -> dict[str, Any]:
    """A valid wire dict for ``cls`` with up to three fields replaced, added or dropped."""
    data = dict(BASES[cls])
    data.update(draw(st.dictionaries(st.sampled_from(FIELD_NAMES), VALUES, max_size=3)))
    for name in draw(st.lists(st.sampled_from(sorted(data)), max_size=1)):
        del data[name]
    for name in DATETIME_FIELDS | {"message_id"}:
        # factories (now, uuid) would differ between the two paths
        data.setdefault(name, FIXED_DT if name in DATETIME_FIELDS else "m-1")
    return data


cases = st.sampled_from(ENVELOPES).flatmap(lambda cls: st.tuples(st.just(cls), wire_dicts(cls)))


def _full_path(data: dict[str, Any], cls: type[Any]) -> Any:
    try:
        return converter.structure(data, cls)
    except Exception as exc:  # noqa: BLE001 - any failure means "rejected"
        return exc


@settings(max_examples=1500, deadline=None)
@given(cases)
def test_fast_structure_never_accepts_more_than_full_path(case: tuple[type[Any], Any]) -> None:
    cls, data = case
    try:
        fast = _GENERATED[cls](data)
    except Exception:  # noqa: BLE001 - declining by raising is allowed
        fast = None
    full = _full_path(data, cls)
    if fast is None:
        return
    assert not isinstance(full, Exception), (data, full)
    assert fast == full
    assert repr(fast) == repr(full)  # same datetime tzinfo objects, same extras
    for attribute in cls.__attrs_attrs__:
        assert type(getattr(fast, attribute.name)) is type(getattr(full, attribute.name))


@pytest.mark.parametrize(
    ("cls", "data"),
    [
        (TaskEnvelope, {"task_id": "t", "created_at": FIXED_DT, "priority": 0, "tenant": 1}),
        (StatusEvent, {"task_id": "t", "status": "ok", "timestamp": FIXED_DT, "result": {}}),
        (WorkflowEnvelope, {"task_id": "t", "stage": "s", "message_id": "m", "extra": 1}),
        (BatchTaskEnvelope, {"batch_id": "b", "tasks": [{"task_id": "t", "created_at": FIXED_DT}],
                             "created_at": FIXED_DT}),
    ],
)  # fmt: skip
def test_fast_structure_accepts_ordinary_envelopes(cls: type[Any], data: dict[str, Any]) -> None:
    fast = _GENERATED[cls](data)
    assert fast is not None
    assert fast == converter.structure(data, cls)


def _outcome(fn: Any) -> Any:
    try:
        return repr(fn())
    except ContractError as exc:
        return (type(exc), exc.reason, exc.errors)


@settings(max_examples=800, deadline=None)
@given(cases)
def test_decode_hot_path_answers_as_loads_then_structure(case: tuple[type[Any], Any]) -> None:
    cls, data = case
    try:
        body = orjson.dumps(data)
    except TypeError:  # 2**70: not representable by orjson, so no hot path either
        return
    assert _outcome(lambda: decode(body, cls)) == _outcome(lambda: structure(loads(body), cls))


@pytest.mark.parametrize(
    ("data", "extra"),
    [
        ({"service": None}, {}),
        ({"service": None, "tenant": "a"}, {"tenant": "a"}),
        ({"priority": None, "correlation_id": None, "x": None}, {"x": None}),
        ({"payload": {}, "tenant": 1, "x": [1]}, {"tenant": 1, "x": [1]}),
    ],
)
def test_extra_keys_exact_with_explicit_nulls(data: dict[str, Any], extra: dict[str, Any]) -> None:
    data = {"task_id": "t", "created_at": FIXED_DT, **data}
    fast = _GENERATED[TaskEnvelope](data)
    assert fast is not None
    assert fast.extra == extra
    assert repr(fast) == repr(converter.structure(data, TaskEnvelope))


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview, str])
def test_decode_body_types_agree(kind: type[Any]) -> None:
    # Only bytes take the hot path; the others must give the same envelope.
    body = b'{"task_id":"t-1","status":"ok","timestamp":"2025-01-02T03:04:05Z","x":1}'
    data: Any = body.decode() if kind is str else kind(body)
    assert decode(data, StatusEvent) == decode(body, StatusEvent)


def test_decoded_envelopes_are_ordinary_frozen_instances() -> None:
    event = StatusEvent(task_id="t-1", status="done", timestamp=datetime(2025, 1, 2, tzinfo=UTC))
    decoded = decode(encode(event), StatusEvent)
    assert type(decoded) is StatusEvent
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        decoded.status = "x"  # type: ignore[misc]
    assert attrs.evolve(decoded, event_id=None) == attrs.evolve(event, correlation_id="t-1")
    assert pickle.loads(pickle.dumps(decoded)) == decoded


def test_descriptor_fallback_builds_the_same_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    # Where __class__ assignment is refused, slots are set through descriptors.
    monkeypatch.setattr(_fast, "_mutable_twin", lambda cls: None)
    data = dict(BASES[StatusEvent], timestamp=FIXED_DT, tenant="a")
    slow = _fast.make_structure_fn(StatusEvent)(data)
    assert type(slow) is StatusEvent
    assert repr(slow) == repr(_GENERATED[StatusEvent](data))


def test_errors_still_come_from_the_full_path() -> None:
    with pytest.raises(ContractError) as info:
        structure({"task_id": 5, "status": 3, "result": []}, StatusEvent)
    assert info.value.fields == ["task_id", "status", "result"]


def test_encode_zero_offset_timezone_matches_format_datetime() -> None:
    when = datetime(2025, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(0), "GMT"))
    task = TaskEnvelope(task_id="t", created_at=when)
    assert task.created_at.tzinfo is not UTC
    body = encode(task)
    assert f'"created_at":"{format_datetime(when)}"'.encode() in body
    assert decode(body, TaskEnvelope).created_at == when


# -- depth scan on bodies above SMALL_BODY --------------------------------------


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _nest(depth: int, leaf: Any) -> Any:
    for i in range(depth):
        leaf = [leaf] if i % 2 else {"k": leaf}
    return leaf


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 12),
    st.lists(st.text('[]{}"\\ab', max_size=6), min_size=1, max_size=4),
    st.integers(1, 10),
    st.booleans(),
)
def test_large_body_depth_scan_matches_parser(
    depth: int, strings: list[str], limit: int, bracket_strings: bool
) -> None:
    filler = "x" * (SMALL_BODY + 10)
    leaf = strings if bracket_strings else [s.strip("[]{}") for s in strings]
    value = {"pad": filler, "body": _nest(depth, leaf), "more": [[1], {"a": []}]}
    text = json.dumps(value, separators=(",", ":")).encode()
    assert len(text) > SMALL_BODY
    assert exceeds_depth(text, limit) == (_depth(value) > limit)


@pytest.mark.parametrize("nested", [64, 65])
def test_large_body_depth_limit_with_bracket_strings(nested: int) -> None:
    strings = '"' + "[" * 300 + '","' + "]" * 300 + '"'
    body = (
        b'{"task_id":"a","payload":{"s":['
        + strings.encode()
        + b'],"pad":"'
        + b"y" * SMALL_BODY
        + b'","d":'
        + b"[" * (nested - 2)
        + b"]" * (nested - 2)
        + b"}}"
    )
    if nested > 64:
        with pytest.raises(ContractError) as info:
            decode(body, TaskEnvelope)
        assert info.value.reason == "too_deep"
    else:
        assert decode(body, TaskEnvelope).payload["pad"]


# -- identifier cache -----------------------------------------------------------

_RULE = re.compile(r"[A-Za-z0-9_:@/+=\-](?:[A-Za-z0-9._:@/+=\-]{0,254}[A-Za-z0-9_:@/+=\-])?")


@settings(max_examples=500, deadline=None)
@given(st.text(string.ascii_letters + string.digits + "._:@/+=- *é\n", max_size=300))
def test_identifier_check_matches_rule_with_and_without_cache(value: str) -> None:
    expected = _RULE.fullmatch(value) is not None and ".." not in value
    _ids.RECENT_IDENTIFIERS.clear()
    assert is_valid_identifier(value) == expected
    assert is_valid_identifier(value) == expected  # second call may hit the cache
    assert is_valid_identifier(value + " ") is False
