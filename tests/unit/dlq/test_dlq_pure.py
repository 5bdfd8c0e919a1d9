"""DLQ pure code: ids, queries and cursors, replay / manual-retry headers, views."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from _dlq_records import dlq_record  # tests/ is on sys.path (rootdir conftest)
from relayna.consumer import EXCEPTION_MESSAGE, compute_dlq_id
from relayna.contracts import headers as h
from relayna.dlq import (
    Cursor,
    DLQQuery,
    diagnosis,
    dlq_summary,
    failed_summary,
    manual_retry_headers,
    parse_limit,
    parse_query,
    replay_headers,
)
from relayna.dlq._codec import decode_record, encode_record, inspect_body
from relayna.dlq._keys import key_value
from relayna.dlq._republish import check_queue_name, override_bytes, task_id_of_payload
from relayna.errors import ContractError

NOW = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def record(**changes: Any) -> Any:
    values: dict[str, Any] = {
        "task_id": "t-1",
        "correlation_id": "c-1",
        "headers": {
            h.RETRY_ATTEMPT: 1,
            h.MAX_RETRIES: 1,
            h.SOURCE_QUEUE: "orders",
            h.FAILURE_REASON: "handler_error",
            h.EXCEPTION_TYPE: "ValueError",
            EXCEPTION_MESSAGE: "boom",
            "x-death": [{"queue": "orders", "reason": "rejected", "count": 1}],
            "traceparent": "00-abc",
        },
        "body": b'{"task_id":"t-1","payload":{}}',
    }
    values.update(changes)
    return dlq_record(1, now=NOW, **values)


# -- identity -------------------------------------------------------------------


def test_dlq_id_comes_from_the_facts_not_the_clock() -> None:
    first = record(dead_lettered_at=NOW)
    later = record(dead_lettered_at=NOW + timedelta(hours=1))
    assert first.dlq_id == later.dlq_id  # a redelivered dead-letter is the same record
    assert len(first.dlq_id) == 64


@pytest.mark.parametrize(
    "change",
    [
        {"body": b"other"},
        {"retry_attempt": 2},
        {"correlation_id": "c-2"},
        {"queue_name": "x.dlq"},
        {"message_id": "m-2"},
        {"identity_headers": {h.REPLAYED_AT: "2026-01-01T00:00:00Z"}},
    ],
)
def test_dlq_id_changes_with_any_fact(change: dict[str, Any]) -> None:
    assert record(**change).dlq_id != record().dlq_id


@given(st.dictionaries(st.text(max_size=8), st.one_of(st.integers(), st.text(), st.binary())))
def test_dlq_id_ignores_header_order(headers: dict[str, Any]) -> None:
    reordered = dict(reversed(list(headers.items())))
    kw: dict[str, Any] = {
        "queue_name": "q",
        "source_queue_name": "s",
        "correlation_id": None,
        "retry_attempt": 0,
        "message_id": None,
        "body": b"x",
    }
    assert compute_dlq_id(headers=headers, **kw) == compute_dlq_id(headers=reordered, **kw)


# -- queries ----------------------------------------------------------------------


@pytest.mark.parametrize("text", ["0", "201", "-1", "abc", "1.5", "", " 5", "9" * 20, "٣"])
def test_limit_outside_1_to_200_is_refused(text: str) -> None:
    with pytest.raises(ContractError):
        parse_limit(text)


def test_limit_bounds_are_accepted() -> None:
    assert parse_limit("1") == 1
    assert parse_limit("200") == 200
    assert parse_limit(None) == 50


@pytest.mark.parametrize(
    "text", ["", "abc", "12", ":abc", "12:", "1:a b", "1:" + "a" * 129, "x:abc", "1:ab:c", "1:ab\n"]
)
def test_malformed_cursors_are_refused(text: str) -> None:
    with pytest.raises(ContractError):
        Cursor.parse(text)


@given(st.integers(0, 10**15), st.from_regex(r"[A-Za-z0-9_\-]{1,128}", fullmatch=True))
def test_cursor_round_trips(score: int, dlq_id: str) -> None:
    cursor = Cursor(score, dlq_id)
    assert Cursor.parse(cursor.encode()) == cursor


@pytest.mark.parametrize(
    "params",
    [
        {"state": "gone"},
        {"limit": "0"},
        {"cursor": "nope"},
        {"queue_name": "q" * 2000},
    ],
)
def test_bad_dlq_query_parameters_raise(params: dict[str, str]) -> None:
    with pytest.raises(ContractError):
        parse_query(params)


@pytest.mark.parametrize(
    "params",
    [
        {"failed_from": "yesterday"},
        {"failed_to": "2026-13-01T00:00:00Z"},
        {"failed_from": "2026-01-02T00:00:00Z", "failed_to": "2026-01-01T00:00:00Z"},
        {"investigation_status": "maybe"},
    ],
)
def test_bad_failed_task_query_parameters_raise(params: dict[str, str]) -> None:
    with pytest.raises(ContractError):
        parse_query(params, extended=True)


def test_failed_task_query_maps_the_original_names() -> None:
    query, cursor, limit = parse_query(
        {
            "queue_name": "orders",
            "dlq_name": "orders.dlq",
            "failed_from": "2026-01-01T00:00:00+02:00",
            "failed_to": "2026-01-02T00:00:00 02:00",  # '+' decoded as a space
            "limit": "10",
            "cursor": "5:abc",
        },
        extended=True,
    )
    assert query.source_queue_name == "orders"
    assert query.queue_name == "orders.dlq"
    assert query.failed_from == datetime(2025, 12, 31, 22, tzinfo=UTC)
    assert query.failed_to == datetime(2026, 1, 1, 22, tzinfo=UTC)
    assert cursor == Cursor(5, "abc")
    assert limit == 10


def test_empty_parameters_are_no_filter() -> None:
    query, cursor, _ = parse_query({"queue_name": "", "cursor": "", "task_id": ""})
    assert query == DLQQuery()
    assert cursor is None


@given(st.text(min_size=1, max_size=300))
def test_index_key_values_never_contain_separators_or_grow(value: str) -> None:
    encoded = key_value(value)
    assert "\n" not in encoded
    assert " " not in encoded
    assert len(encoded) <= 200
    if encoded.startswith("~"):
        assert key_value(value + "x") != encoded


# -- republish headers ----------------------------------------------------------


def test_replay_headers_keep_originals_and_drop_failure_and_broker_headers() -> None:
    rec = record(headers={**record().headers, h.legacy_name(h.FAILURE_REASON): "old"})
    out = replay_headers(rec, NOW)
    assert out[h.ORIGINAL_RETRY_ATTEMPT] == 1
    assert out[h.ORIGINAL_FAILURE_REASON] == "handler_error"
    assert out[h.ORIGINAL_EXCEPTION_TYPE] == "ValueError"
    assert out[h.REPLAYED_FROM_DLQ] is True
    assert out[h.DLQ_ID] == rec.dlq_id
    assert out[h.REPLAYED_AT] == "2026-01-02T03:04:05.678000Z"
    assert out[h.RETRY_ATTEMPT] == 0
    for gone in (h.FAILURE_REASON, h.EXCEPTION_TYPE, EXCEPTION_MESSAGE, "x-death"):
        assert gone not in out
    assert h.legacy_name(h.FAILURE_REASON) not in out
    assert out["traceparent"] == "00-abc"
    assert out[h.SOURCE_QUEUE] == "orders"


def test_replay_headers_restore_binary_header_values() -> None:
    rec = record(headers={"blob": b"\xff\x00"})
    fields, _ = encode_record(rec, max_body_bytes=1024)
    stored = decode_record(fields, fields.get("body"))
    assert stored.headers["blob"] == {"$base64": "/wA="}
    assert replay_headers(stored, NOW)["blob"] == b"\xff\x00"


def test_manual_retry_headers() -> None:
    rec = record()
    out = manual_retry_headers(rec, NOW)
    assert out[h.MANUAL_RETRY_FROM_FAILURE_ID] == rec.dlq_id
    assert out[h.MANUAL_RETRY_AT] == "2026-01-02T03:04:05.678000Z"
    assert out[h.RETRY_ATTEMPT] == 0
    assert h.FAILURE_REASON not in out
    assert h.EXCEPTION_TYPE not in out


def test_override_payload_rules() -> None:
    assert override_bytes({"task_id": "t2"}, "application/json") == b'{"task_id":"t2"}'
    assert override_bytes('{"a":1}', "application/json") == b'{"a":1}'
    assert override_bytes("plain words", "text/plain") == b"plain words"
    with pytest.raises(ContractError):
        override_bytes("not json {", "application/json")
    with pytest.raises(ContractError):
        override_bytes("not json", None)
    assert task_id_of_payload({"task_id": "t9"}) == "t9"
    assert task_id_of_payload('{"task_id": "t8"}') == "t8"
    assert task_id_of_payload("nope") is None


@pytest.mark.parametrize("name", ["", "a\nb", "x" * 256, 5, None, "é" * 200])
def test_bad_target_queue_names(name: Any) -> None:
    with pytest.raises(ContractError):
        check_queue_name(name)


# -- body inspection and views ----------------------------------------------------


@given(st.binary(max_size=200))
def test_any_body_survives_encode_decode_byte_identical(body: bytes) -> None:
    rec = record(body=body)
    fields, kept = encode_record(rec, max_body_bytes=1024)
    assert kept
    stored = decode_record(fields, fields.get("body"))
    assert stored.body == body
    _value, encoding = inspect_body(body)
    assert encoding in ("json", "text", "base64")
    summary = dlq_summary(stored)
    assert summary["body_encoding"] == encoding


@pytest.mark.parametrize(
    ("body", "encoding"),
    [
        (b'{"a": 1}', "json"),
        (b"plain text", "text"),
        (b"\xff\xfe\x00", "base64"),
        (b'{"a": 1, "a": 2}', "text"),  # duplicate keys: shown as the bytes say
        (b"[" * 100 + b"]" * 100, "text"),  # deeper than the decoder's limit
        (b"NaN", "text"),
    ],
)
def test_body_encoding(body: bytes, encoding: str) -> None:
    assert inspect_body(body)[1] == encoding


def test_body_over_the_limit_is_recorded_without_it() -> None:
    rec = record(body=b"x" * 2048)
    fields, kept = encode_record(rec, max_body_bytes=1024)
    assert not kept
    assert "body" not in fields
    stored = decode_record(fields)
    assert stored.payload_available is False
    assert stored.body_omitted == "too_large"
    assert stored.body_size == 2048
    assert any("not kept" in w for w in diagnosis(stored)["replay"]["warnings"])


def test_summaries_have_the_original_fields() -> None:
    rec = record()
    assert set(dlq_summary(rec)) >= {
        "dlq_id", "queue_name", "source_queue_name", "retry_queue_name", "task_id",
        "correlation_id", "reason", "exception_type", "retry_attempt", "max_retries",
        "content_type", "body_encoding", "dead_lettered_at", "state", "replay_count",
        "replayed_at", "replay_target_queue_name",
    }  # fmt: skip
    failed = failed_summary(rec, service_id="svc-1")
    assert failed["failure_id"] == rec.dlq_id
    assert failed["queue_name"] == "orders"
    assert failed["dlq_name"] == "orders.dlq"
    assert failed["error_message"] == "boom"
    assert failed["status"] == "DLQ"
    assert failed["service_id"] == "svc-1"
    assert failed["failed_at"] == "2026-01-02T03:04:05.678000Z"
    assert diagnosis(rec)["envelope"]["body_encoding"] == "json"


_params = st.dictionaries(
    st.sampled_from(
        ["queue_name", "task_id", "reason", "source_queue_name", "state", "cursor", "limit",
         "failed_from", "failed_to", "investigation_status", "dlq_name", "worker_id"]
    ),
    st.text(max_size=40) | st.from_regex(r"\d{1,17}:[a-f0-9]{1,70}", fullmatch=True),
)  # fmt: skip


@given(_params, st.booleans())
def test_any_query_string_is_parsed_or_refused_with_a_contract_error(
    params: dict[str, str], extended: bool
) -> None:
    try:
        query, cursor, limit = parse_query(params, extended=extended)
    except ContractError as exc:
        errors = exc.errors
        query = None
    if query is None:
        assert errors  # says which parameter
        return
    assert 1 <= limit <= 200
    assert cursor is None or Cursor.parse(cursor.encode()) == cursor
    assert all(v is None or 0 < len(v) <= 1024 for _, v in query.index_filters())
