"""Failed-task notifications, the pure parts: what to send, how it is signed, when.

**Email API contract** (the original's, ANCHOR §3.8): ``POST <service URL>``
with ``X-API-Key`` and ``{"receivers": [...], "title": ..., "body": ...}``;
any 2xx is success. One item: title ``"{prefix}: {service} / {failure_id}"``;
a batch: ``"{prefix}: N failed tasks"``, bodies joined with ``---``. A body is
``Label: value`` lines with ``-`` for empty values.

**Webhook** (new): ``POST <webhook URL>`` with the JSON document::

    {"type": "relayna.failed_tasks", "delivery_id", "sent_at", "title",
     "count", "items": [{"service_id", "service_name", "failure_id",
     "task_id", "correlation_id", "queue_name", "dlq_name", "status",
     "failed_at", "error_type", "error_message", "worker_id",
     "investigation_status", "retry_status", "task_ref"}]}

signed with HMAC-SHA256 over ``"<timestamp>." + body``:
``X-Relayna-Timestamp: <unix seconds>``, ``X-Relayna-Signature:
sha256=<hex>``. A receiver recomputes the HMAC with the shared secret,
compares in constant time and refuses old timestamps (replays).

Both targets also get ``X-Relayna-Delivery: <delivery_id>`` (and
``Idempotency-Key`` with the same value): the id is a hash of the batch's
items, the same on every attempt, so a receiver can drop a repeat that a
crash between its 2xx and Studio's bookkeeping would cause.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

__all__ = [
    "BODY_FIELDS",
    "ITEM_FIELDS",
    "delivery_id",
    "due",
    "email_document",
    "item_key",
    "sign",
    "verify",
    "webhook_document",
]

#: (label, field) of an email body, in order.
BODY_FIELDS: tuple[tuple[str, str], ...] = (
    ("Service", "service_name"),
    ("Service ID", "service_id"),
    ("Failure ID", "failure_id"),
    ("Task ID", "task_id"),
    ("Correlation ID", "correlation_id"),
    ("Queue", "queue_name"),
    ("DLQ", "dlq_name"),
    ("Status", "status"),
    ("Failed At", "failed_at"),
    ("Error Type", "error_type"),
    ("Error Message", "error_message"),
    ("Worker", "worker_id"),
    ("Investigation", "investigation_status"),
    ("Retry", "retry_status"),
)
#: The fields of an item kept in the pending batch and sent to webhooks.
ITEM_FIELDS = (*tuple(dict.fromkeys(f for _, f in BODY_FIELDS)), "task_ref")
_MESSAGE_MAX = 2000


def item_key(item: Mapping[str, Any]) -> str:
    return f"{item['service_id']}:{item['failure_id']}"


def slim(item: Mapping[str, Any]) -> dict[str, Any]:
    """The item as kept and sent (messages capped at 2,000 characters)."""
    out = {field: item.get(field) for field in ITEM_FIELDS}
    message = out.get("error_message")
    if isinstance(message, str) and len(message) > _MESSAGE_MAX:
        out["error_message"] = message[:_MESSAGE_MAX] + "…"
    return out


def delivery_id(items: Iterable[Mapping[str, Any]], target: str) -> str:
    keys = sorted(item_key(i) for i in items)
    return hashlib.sha256(orjson.dumps([target, keys])).hexdigest()[:32]


def _value(value: object) -> str:
    if value is None or value == "":
        return "-"
    return str(value).replace("\r", " ").replace("\n", " ")


def body(item: Mapping[str, Any]) -> str:
    return "\n".join(f"{label}: {_value(item.get(field))}" for label, field in BODY_FIELDS)


def title(items: Sequence[Mapping[str, Any]], prefix: str) -> str:
    if len(items) == 1:
        item = items[0]
        return f"{prefix}: {item.get('service_name') or item['service_id']} / {item['failure_id']}"
    return f"{prefix}: {len(items)} failed tasks"


def email_document(
    items: Sequence[Mapping[str, Any]], receivers: Sequence[str], prefix: str
) -> dict[str, Any]:
    return {
        "receivers": list(receivers),
        "title": title(items, prefix),
        "body": "\n---\n".join(body(i) for i in items),
    }


def webhook_document(
    items: Sequence[Mapping[str, Any]], prefix: str, sent_at: str
) -> dict[str, Any]:
    return {
        "type": "relayna.failed_tasks",
        "delivery_id": delivery_id(items, "webhook"),
        "sent_at": sent_at,
        "title": title(items, prefix),
        "count": len(items),
        "items": [slim(i) for i in items],
    }


def sign(secret: str, timestamp: int, content: bytes) -> str:
    """``sha256=<hex HMAC-SHA256(secret, "<timestamp>." + content)>``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + content, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(
    secret: str,
    timestamp: str,
    signature: str,
    content: bytes,
    *,
    now: float,
    tolerance: float = 300,
) -> bool:
    """What a receiver does (documented, and used by the tests)."""
    if not timestamp.isdigit() or abs(now - int(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), content), signature)


def due(started_at: float | None, wait: int, now: float) -> bool:
    """Whether a batch that started at ``started_at`` goes out now (``wait`` 0: at once)."""
    return started_at is not None and (wait == 0 or now >= started_at + wait)
