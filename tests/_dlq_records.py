"""DLQ records for tests: ``dlq_record(n, age=…, **changes)``.

Record ``n`` is task ``t{n}`` dead-lettered from ``orders`` (``orders.dlq``,
retry queue ``orders.retry``) ``age`` seconds before ``now``. Import as
``from _dlq_records import dlq_record`` (tests/ is on sys.path: rootdir conftest).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from relayna.consumer import DLQRecord, make_dlq_record
from relayna.contracts import headers as h

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def dlq_record(n: int, *, age: float = 0.0, now: datetime = T0, **changes: Any) -> DLQRecord:
    values: dict[str, Any] = {
        "queue_name": "orders.dlq",
        "source_queue_name": "orders",
        "retry_queue_name": "orders.retry",
        "task_id": f"t{n}",
        "correlation_id": f"c{n}",
        "service_name": "worker",
        "reason": "handler_error",
        "exception_type": "ValueError",
        "exception_message": "boom",
        "retry_attempt": 1,
        "max_retries": 1,
        "headers": {
            h.RETRY_ATTEMPT: 1,
            h.SOURCE_QUEUE: "orders",
            h.FAILURE_REASON: "handler_error",
            h.EXCEPTION_TYPE: "ValueError",
            "n": n,
        },
        "content_type": "application/json",
        "body": b'{"task_id": "t%d", "payload": {}}' % n,
        "dead_lettered_at": now - timedelta(seconds=age),
    }
    values.update(changes)
    return make_dlq_record(**values)
