"""What a replay or a manual retry publishes: headers, properties, payload. Pure.

Replay (the original's wire, with relayna's ``relayna-*`` header names):
copies of the failure headers go to ``relayna-original-*``; the copy gets
``relayna-replayed-from-dlq``, ``relayna-dlq-id`` and ``relayna-replayed-at``;
the attempt counter restarts at 0; the failure headers (either spelling) and
the broker's ``x-death`` bookkeeping are dropped.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from relayna.consumer import EXCEPTION_MESSAGE, DLQRecord
from relayna.contracts import format_datetime, get_header, loads, without_headers
from relayna.contracts import headers as h
from relayna.errors import ContractError
from relayna.transport import Properties

__all__ = [
    "UNKNOWN_SOURCE",
    "check_queue_name",
    "manual_retry_headers",
    "override_bytes",
    "replay_headers",
    "republish_properties",
    "task_id_of_payload",
]

#: ``source_queue_name`` of a dead-letter whose origin no header tells.
UNKNOWN_SOURCE = "unknown"

_BROKER_HEADERS = ("x-death", "x-first-death-queue", "x-first-death-reason",
                   "x-first-death-exchange", "x-last-death-queue", "x-last-death-reason",
                   "x-last-death-exchange")  # fmt: skip
_FAILURE = (h.FAILURE_REASON, h.EXCEPTION_TYPE, EXCEPTION_MESSAGE)
_QUEUE_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,255}")


def _amqp(value: Any) -> Any:
    """Undo the ``{"$base64": ...}`` wrapping of stored header values."""
    if isinstance(value, Mapping):
        if len(value) == 1 and isinstance(value.get("$base64"), str):
            return base64.b64decode(value["$base64"])
        return {k: _amqp(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_amqp(v) for v in value]
    return value


def _base(headers: Mapping[str, Any], extra_drop: tuple[str, ...]) -> dict[str, Any]:
    kept = without_headers(headers, (*_FAILURE, h.RETRY_ATTEMPT, *extra_drop))
    return {k: _amqp(v) for k, v in kept.items() if k not in _BROKER_HEADERS}


def replay_headers(record: DLQRecord, now: datetime) -> dict[str, Any]:
    originals = (
        (h.RETRY_ATTEMPT, h.ORIGINAL_RETRY_ATTEMPT),
        (h.FAILURE_REASON, h.ORIGINAL_FAILURE_REASON),
        (h.EXCEPTION_TYPE, h.ORIGINAL_EXCEPTION_TYPE),
    )
    out = _base(
        record.headers,
        (h.REPLAYED_FROM_DLQ, h.DLQ_ID, h.REPLAYED_AT, *(dst for _, dst in originals)),
    )
    for src, dst in originals:
        value = get_header(record.headers, src)
        if value is not None:
            out[dst] = _amqp(value)
    out[h.REPLAYED_FROM_DLQ] = True
    out[h.DLQ_ID] = record.dlq_id
    out[h.REPLAYED_AT] = format_datetime(now)
    out[h.RETRY_ATTEMPT] = 0
    return out


def manual_retry_headers(record: DLQRecord, now: datetime) -> dict[str, Any]:
    out = _base(record.headers, (h.MANUAL_RETRY_FROM_FAILURE_ID, h.MANUAL_RETRY_AT))
    out[h.MANUAL_RETRY_FROM_FAILURE_ID] = record.failure_id
    out[h.MANUAL_RETRY_AT] = format_datetime(now)
    out[h.RETRY_ATTEMPT] = 0
    return out


def republish_properties(record: DLQRecord, headers: dict[str, Any]) -> Properties:
    return Properties(
        content_type=record.content_type,
        headers=headers,
        delivery_mode=2,
        correlation_id=record.correlation_id,
        message_id=record.message_id,
    )


def check_queue_name(name: Any, field: str = "target_queue") -> str:
    """A queue name an operator typed: 1..255 characters, no control characters."""
    if not isinstance(name, str) or _QUEUE_NAME.fullmatch(name) is None:
        raise ContractError(
            f"invalid {field}", errors=[(field, "1..255 characters, no control characters")]
        )
    if len(name.encode("utf-8")) > 255:
        raise ContractError(f"invalid {field}", errors=[(field, "longer than 255 bytes")])
    return name


def _json_like(content_type: str | None) -> bool:
    return content_type is None or "json" in content_type.lower()


def override_bytes(payload: Any, content_type: str | None) -> bytes:
    """The body of a manual retry with ``override_payload``.

    A string is sent as its UTF-8 bytes (as the original did) but, for a JSON
    message, it must itself be a JSON document; any other value is JSON-encoded.

    Raises:
        ContractError: a string that is not JSON for a JSON message.
    """
    if isinstance(payload, str):
        raw = payload.encode("utf-8", "surrogatepass")
        if _json_like(content_type):
            try:
                loads(raw)
            except ContractError as exc:
                raise ContractError(
                    "override_payload is not JSON",
                    errors=[("override_payload", f"not a JSON document: {exc}")],
                ) from None
        return raw
    try:
        return orjson.dumps(payload)
    except TypeError as exc:
        raise ContractError(
            "override_payload is not JSON", errors=[("override_payload", str(exc))]
        ) from None


def task_id_of_payload(payload: Any) -> str | None:
    if isinstance(payload, str):
        try:
            payload = loads(payload)
        except ContractError:
            return None
    if isinstance(payload, Mapping) and payload.get("task_id") is not None:
        return str(payload["task_id"])
    return None
