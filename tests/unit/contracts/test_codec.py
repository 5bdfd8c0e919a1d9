from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import orjson

from relayna.contracts import (
    BatchTaskEnvelope,
    ContractAliasConfig,
    StatusEvent,
    TaskEnvelope,
    WorkflowEnvelope,
    compute_event_id,
    decode_batch,
    decode_status,
    decode_task,
    decode_task_message,
    decode_workflow,
    dumps,
    encode_batch,
    encode_status,
    encode_task,
    encode_workflow,
    ensure_event_id,
    loads,
    structure,
    unstructure,
)

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_task_wire_shape_is_compact_and_omits_none() -> None:
    body = encode_task(TaskEnvelope(task_id="t1", payload={"k": "é"}, created_at=T0))
    assert (
        body
        == (
            '{"task_id":"t1","payload":{"k":"é"},"created_at":"2025-01-02T03:04:05Z",'
            '"spec_version":"1.0"}'
        ).encode()
    )


def test_datetimes_normalised_to_utc() -> None:
    plus2 = timezone(timedelta(hours=2))
    task = decode_task(b'{"task_id":"a","created_at":"2025-01-02T05:04:05.5+02:00"}')
    assert task.created_at == datetime(2025, 1, 2, 3, 4, 5, 500000, tzinfo=UTC)
    assert (
        TaskEnvelope(
            task_id="a", created_at=datetime(2025, 1, 2, 5, tzinfo=plus2)
        ).created_at.tzinfo
        is UTC
    )
    naive = decode_task(b'{"task_id":"a","created_at":"2025-01-02T03:04:05"}')
    assert naive.created_at == T0


def test_extra_fields_preserved() -> None:
    body = b'{"task_id":"a","tenant":"acme","extra":{"x":1}}'
    task = decode_task(body)
    assert task.extra == {"tenant": "acme", "extra": {"x": 1}}
    assert orjson.loads(encode_task(task))["tenant"] == "acme"


def test_big_integers_preserved_both_ways() -> None:
    big = 2**100
    body = encode_task(TaskEnvelope(task_id="a", payload={"n": big, "m": -(2**70)}))
    assert str(big).encode() in body
    assert decode_task(body).payload == {"n": big, "m": -(2**70)}
    assert loads(b'{"n":18446744073709551616}')["n"] == 2**64


def test_non_canonical_json_takes_slow_path() -> None:
    body = b'{ "task_id" : "a", "payload": {"k": "\\u00e9", "f": 1E2} }'
    task = decode_task(body)
    assert task.payload == {"k": "é", "f": 100.0}


def test_priority_zero_distinct_from_unset() -> None:
    assert decode_task(encode_task(TaskEnvelope(task_id="a", priority=0))).priority == 0
    assert decode_task(encode_task(TaskEnvelope(task_id="a"))).priority is None


def test_status_event_id_matches_original_rule() -> None:
    event = StatusEvent(task_id="t1", status="completed", timestamp=T0, meta={"k": "ü"})
    filled = ensure_event_id(event)
    assert filled.correlation_id == "t1"
    wire = {
        "task_id": "t1",
        "status": "completed",
        "timestamp": "2025-01-02T03:04:05Z",
        "meta": {"k": "ü"},
        "correlation_id": "t1",
        "spec_version": "1.0",
    }
    expected = hashlib.sha256(
        json.dumps(wire, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    assert filled.event_id == expected == compute_event_id(wire)
    decoded = decode_status(encode_status(event))
    assert decoded.event_id == expected
    # deterministic; an explicit id is kept
    assert ensure_event_id(event).event_id == expected
    assert ensure_event_id(StatusEvent(task_id="t1", status="x", event_id="e1")).event_id == "e1"


def test_workflow_correlation_defaults_to_task_id() -> None:
    msg = WorkflowEnvelope(task_id="t1", stage="plan", action="go")
    decoded = decode_workflow(encode_workflow(msg))
    assert decoded.correlation_id == "t1"
    assert decoded.message_id == msg.message_id


def test_batch_round_trip_and_detection() -> None:
    batch = BatchTaskEnvelope(batch_id="b1", tasks=[TaskEnvelope(task_id="a")], created_at=T0)
    body = encode_batch(batch)
    assert decode_batch(body) == batch
    assert decode_task_message(body) == batch
    assert isinstance(decode_task_message(encode_task(TaskEnvelope(task_id="a"))), TaskEnvelope)


def test_document_id_alias_always_applies() -> None:
    task = decode_task(b'{"documentId":"doc-1"}')
    assert task.task_id == "doc-1"
    assert task.extra == {"documentId": "doc-1"}
    both = decode_task(b'{"documentId":"doc-1","task_id":"t"}')
    assert both.task_id == "t"


def test_configured_payload_alias_and_batch_items() -> None:
    aliases = ContractAliasConfig(field_aliases={"task_id": "jobId"})
    task = decode_task(b'{"jobId":"j1"}', aliases=aliases)
    assert task.task_id == "j1"
    batch = decode_batch(b'{"batch_id":"b","tasks":[{"jobId":"j2"}]}', aliases=aliases)
    assert batch.tasks[0].task_id == "j2"


def test_structure_from_mapping_and_unstructure() -> None:
    task = structure({"task_id": "a", "created_at": T0}, TaskEnvelope)
    assert unstructure(task)["created_at"] == "2025-01-02T03:04:05Z"


def test_dumps_handles_datetimes_in_payload() -> None:
    assert dumps({"t": T0}) == b'{"t":"2025-01-02T03:04:05Z"}'
