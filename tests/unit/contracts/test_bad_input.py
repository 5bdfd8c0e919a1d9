"""Bad input from RELIABILITY.md: each is one typed ContractError naming the field."""

from __future__ import annotations

import pytest

from relayna.contracts import (
    Limits,
    StatusEvent,
    TaskEnvelope,
    decode_status,
    decode_task,
    decode_task_message,
    encode_task,
    loads,
)
from relayna.errors import ContractError, EnvelopeTooLarge


def _reason_and_fields(body: bytes) -> tuple[str, list[str]]:
    with pytest.raises(ContractError) as info:
        decode_task(body)
    return info.value.reason, info.value.fields


def test_missing_task_id() -> None:
    assert _reason_and_fields(b'{"payload":{}}') == ("schema", ["task_id"])


@pytest.mark.parametrize(
    "task_id",
    ["a\r\nb", "a\nb", "task*", "a b", " a", "x" * 10_000, "", "a..b", ".a", "a.", "é", "%0d"],
)
def test_bad_task_id_in_body(task_id: str) -> None:
    body = (
        b'{"task_id":'
        + (f'"{task_id}"'.encode().replace(b"\r", b"\\r").replace(b"\n", b"\\n"))
        + b"}"
    )
    assert _reason_and_fields(body) == ("schema", ["task_id"])


@pytest.mark.parametrize("task_id", ["a b", "a\r\nb", "*", "x" * 10_000])
def test_bad_task_id_refused_at_construction(task_id: str) -> None:
    with pytest.raises(ContractError) as info:
        TaskEnvelope(task_id=task_id)
    assert info.value.fields == ["task_id"]


def test_task_id_wrong_type() -> None:
    assert _reason_and_fields(b'{"task_id":5}') == ("schema", ["task_id"])


@pytest.mark.parametrize("priority", [b"300", b"-1", b"true", b"1.5", b'"3"'])
def test_bad_priority(priority: bytes) -> None:
    assert _reason_and_fields(b'{"task_id":"a","priority":' + priority + b"}") == (
        "schema",
        ["priority"],
    )


def test_priority_300_refused_before_send() -> None:
    with pytest.raises(ContractError) as info:
        TaskEnvelope(task_id="a", priority=300)
    assert info.value.fields == ["priority"]


def test_body_over_limit_decode() -> None:
    body = b'{"task_id":"a","payload":{"x":"' + b"y" * 2000 + b'"}}'
    with pytest.raises(EnvelopeTooLarge) as info:
        decode_task(body, limits=Limits(max_body_bytes=1024))
    assert info.value.reason == "too_large"
    assert info.value.size == len(body)


def test_body_over_limit_encode() -> None:
    task = TaskEnvelope(task_id="a", payload={"x": "y" * (1024 * 1024)})
    with pytest.raises(EnvelopeTooLarge):
        encode_task(task)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 10_000 + b"]" * 10_000,
        b"[" * 100_000,
        b'{"task_id":"a","payload":' + b'{"a":' * 10_000 + b"1" + b"}" * 10_001,
        b'{"task_id":"a","payload":{"a":' + b"[" * 65 + b"]" * 65 + b"}}",
    ],
)
def test_nesting_too_deep(body: bytes) -> None:
    reason, fields = _reason_and_fields(body)
    assert (reason, fields) == ("too_deep", ["body"])


def test_depth_at_limit_accepted() -> None:
    # payload object is depth 2, the list adds 62 -> 64 in total
    body = b'{"task_id":"a","payload":{"a":' + b"[" * 62 + b"]" * 62 + b"}}"
    assert decode_task(body).payload["a"]


def test_brackets_inside_strings_do_not_count() -> None:
    text = '"' + "[" * 500 + '\\"' + "{" * 500 + '"'
    body = b'{"task_id":"a","payload":{"s":' + text.encode() + b"}}"
    assert decode_task(body).payload["s"].startswith("[[[")


def test_duplicate_keys_rejected() -> None:
    assert _reason_and_fields(b'{"task_id":"a","task_id":"b"}') == ("schema", ["task_id"])


def test_nested_duplicate_keys_rejected() -> None:
    reason, fields = _reason_and_fields(b'{"task_id":"a","payload":{"k":1,"k":2}}')
    assert (reason, fields) == ("schema", ["k"])


@pytest.mark.parametrize(
    "body", [b"\xff\xfe{}", b'{"task_id":"\xed\xa0\x80"}', b'{"task_id":"a","x":"\\ud800"}']
)
def test_invalid_utf8(body: bytes) -> None:
    assert _reason_and_fields(body)[0] == "decode_error"


@pytest.mark.parametrize("body", [b'{"task_id":', b"", b"{", b'{"task_id":"a"}x', b"nul"])
def test_invalid_json(body: bytes) -> None:
    assert _reason_and_fields(body)[0] == "invalid_json"


@pytest.mark.parametrize("body", [b"[]", b"42", b"null", b'"s"'])
def test_wrong_top_level_type(body: bytes) -> None:
    reason, fields = _reason_and_fields(body)
    assert reason == "schema"
    assert fields == [""]
    with pytest.raises(ContractError):
        decode_task_message(body)


def test_nan_infinity_accepted_by_default_and_refusable() -> None:
    value = loads(b'{"a":NaN,"b":Infinity,"c":-Infinity}')
    assert value["b"] == float("inf")
    with pytest.raises(ContractError) as info:
        loads(b'{"a":NaN}', allow_non_finite=False)
    assert info.value.reason == "invalid_json"
    with pytest.raises(ContractError):
        loads(b'{"a":1e400}', allow_non_finite=False)


def test_nan_encodes_as_null() -> None:
    body = encode_task(TaskEnvelope(task_id="a", payload={"x": float("nan")}))
    assert b'"x":null' in body


def test_bad_datetime() -> None:
    assert _reason_and_fields(b'{"task_id":"a","created_at":"yesterday"}') == (
        "schema",
        ["created_at"],
    )


def test_batch_errors_have_indexed_paths() -> None:
    body = b'{"batch_id":"b","tasks":[{"task_id":"ok"},{"task_id":"a b"},{"payload":3}]}'
    with pytest.raises(ContractError) as info:
        decode_task_message(body)
    assert info.value.fields == ["tasks[1].task_id", "tasks[2].task_id", "tasks[2].payload"]


def test_empty_batch() -> None:
    with pytest.raises(ContractError) as info:
        decode_task_message(b'{"batch_id":"b","tasks":[]}')
    assert info.value.fields == ["tasks"]


def test_status_errors_reported_in_two_phases() -> None:
    # Shape/type errors are all collected first; value rules (identifier,
    # range) run once the shape is right and report the first violation.
    with pytest.raises(ContractError) as info:
        decode_status(b'{"task_id":5,"status":3,"result":[]}')
    assert info.value.fields == ["task_id", "status", "result"]
    with pytest.raises(ContractError) as info:
        decode_status(b'{"task_id":"a b","status":"done"}')
    assert info.value.fields == ["task_id"]


def test_status_requires_status() -> None:
    with pytest.raises(ContractError) as info:
        StatusEvent(task_id="a", status=" ")
    assert info.value.fields == ["status"]
