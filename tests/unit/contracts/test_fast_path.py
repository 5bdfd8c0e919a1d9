"""The generated fast paths agree with the full cattrs + attrs path.

The fast structure functions may decline anything, but whatever they accept
must be accepted by the full path and give the identical object. The depth
scan's large-body shortcut and the identifier cache must stay exact.
"""

from __future__ import annotations

import json
import re
import string
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relayna.contracts import (
    BatchTaskEnvelope,
    StatusEvent,
    TaskEnvelope,
    WorkflowEnvelope,
    _ids,
    decode,
    encode,
    format_datetime,
    is_valid_identifier,
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
