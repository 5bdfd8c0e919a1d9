"""Classification of inbound deliveries: the consumer side of the bad-input list."""

from __future__ import annotations

import orjson
import pytest

from relayna.consumer._decide import Poison
from relayna.consumer._inbound import InboundBatch, InboundTask, parse_status, parse_task
from relayna.contracts import DEFAULT_LIMITS
from relayna.transport import Properties

JSON = Properties(content_type="application/json")
GOOD = orjson.dumps({"task_id": "t-1", "payload": {"x": 1}})


def classify(body: bytes, props: Properties = JSON, **kw: object) -> object:
    return parse_task(body, props, limits=DEFAULT_LIMITS, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("body", "props", "reason"),
    [
        pytest.param(b"\xff\xfe{}", JSON, "decode_error", id="1-invalid-utf8"),
        pytest.param(b'{"task_id":', JSON, "invalid_json", id="2-truncated"),
        pytest.param(b"[]", JSON, "schema", id="3-array"),
        pytest.param(b"42", JSON, "schema", id="3-number"),
        pytest.param(b"null", JSON, "schema", id="3-null"),
        pytest.param(b'{"payload":{}}', JSON, "schema", id="4-missing-task-id"),
        pytest.param(b'{"task_id":""}', JSON, "schema", id="4-empty-task-id"),
        pytest.param(b'{"task_id":"a\\r\\nb"}', JSON, "schema", id="5-crlf"),
        pytest.param(b'{"task_id":"a*"}', JSON, "schema", id="5-glob"),
        pytest.param(b'{"task_id":"' + b"a" * 10_000 + b'"}', JSON, "schema", id="5-10kb"),
        pytest.param(b'{"task_id":"a","task_id":"b"}', JSON, "schema", id="6-duplicate-keys"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, JSON, "too_deep", id="7-depth-100k"),
        pytest.param(
            b'{"task_id":"a","payload":' + b"[" * 200 + b"]" * 200 + b"}",
            JSON,
            "too_deep",
            id="7-deep",
        ),
        pytest.param(
            b'{"task_id":"a","payload":{"x":"' + b"x" * (2 * 1024 * 1024) + b'"}}',
            JSON,
            "too_large",
            id="8-20mib",
        ),
        pytest.param(
            GOOD,
            Properties(content_type="application/json", content_encoding="gzip"),
            "unsupported_content_type",
            id="9-gzip",
        ),
        pytest.param(
            GOOD,
            Properties(content_type="application/x-python-pickle"),
            "unsupported_content_type",
            id="10-pickle",
        ),
        pytest.param(
            GOOD,
            Properties(headers={"relayna-retry-attempt": "abc"}),
            "invalid_header",
            id="11-attempt-abc",
        ),
        pytest.param(
            GOOD,
            Properties(headers={"relayna-retry-attempt": -1}),
            "invalid_header",
            id="11-attempt-negative",
        ),
        pytest.param(
            GOOD,
            Properties(headers={"relayna-retry-attempt": 2**70}),
            "invalid_header",
            id="11-attempt-huge",
        ),
        pytest.param(
            GOOD,
            Properties(headers={"relayna-retry-attempt": float("nan")}),
            "invalid_header",
            id="11-attempt-nan",
        ),
        pytest.param(
            GOOD,
            Properties(headers={"x-relayna-retry-attempt": "zz"}),
            "invalid_header",
            id="11-legacy-attempt",
        ),
        pytest.param(
            GOOD,
            Properties(headers={f"h{i}": i for i in range(10_000)}),
            "invalid_header",
            id="15-header-budget",
        ),
    ],
)
def test_poison_is_classified_with_a_reason(body: bytes, props: Properties, reason: str) -> None:
    result = classify(body, props)
    assert isinstance(result, Poison)
    assert result.reason == reason


def test_valid_task_reads_attempt_from_new_and_legacy_headers() -> None:
    for name in ("relayna-retry-attempt", "x-relayna-retry-attempt"):
        result = classify(GOOD, Properties(content_type="application/json", headers={name: 2}))
        assert isinstance(result, InboundTask)
        assert result.attempt == 2
        assert result.task.task_id == "t-1"


def test_forged_x_death_is_ignored_for_attempts() -> None:
    props = Properties(headers={"x-death": [{"count": 99}], "x-delivery-count": 50})
    result = classify(GOOD, props)
    assert isinstance(result, InboundTask)
    assert result.attempt == 0


def test_unknown_task_type_is_no_handler() -> None:
    body = orjson.dumps({"task_id": "t", "task_type": "mystery"})
    result = classify(body, known_task_types=frozenset({"resize"}))
    assert isinstance(result, Poison)
    assert result.reason == "no_handler"


def test_batch_detection_and_mixed_types_on_routed_topology() -> None:
    body = orjson.dumps(
        {
            "batch_id": "b",
            "tasks": [{"task_id": "1", "task_type": "a"}, {"task_id": "2", "task_type": "b"}],
        }
    )
    assert isinstance(classify(body), InboundBatch)
    mixed = classify(body, routed_task_types=frozenset({"a", "b"}))
    assert isinstance(mixed, Poison)
    assert mixed.reason == "mixed_task_type_batch"


def test_batch_headers_are_read() -> None:
    props = Properties(headers={"batch_id": "b-1", "batch_index": 3, "batch_size": 5})
    result = classify(GOOD, props)
    assert isinstance(result, InboundTask)
    assert (result.batch_id, result.batch_index, result.batch_size) == ("b-1", 3, 5)


def test_status_parse() -> None:
    body = orjson.dumps({"task_id": "c", "status": "done", "meta": {"parent_task_id": "p"}})
    result = parse_status(body, JSON, limits=DEFAULT_LIMITS)
    assert not isinstance(result, Poison)
    assert result.event.meta["parent_task_id"] == "p"
    assert isinstance(parse_status(b"{}", JSON, limits=DEFAULT_LIMITS), Poison)
