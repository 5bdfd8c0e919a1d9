"""Service events as Studio stores them (pure): validation, the dedupe key, ordering.

A ``RelaynaServiceEvent`` from a service's feed (or a push) is
``{cursor, task_id, event_type, source_kind, component, timestamp, event_id,
correlation_id, parent_task_id, payload}``. Studio stores it as a
``StudioControlPlaneEvent``: the same fields (``cursor`` dropped) plus
``service_id, ingest_method, ingested_at, dedupe_key, out_of_order``.

Dedupe key **[WIRE]** (the original's): ``{service_id}:{source_kind}:{event_id}``
when the event has an id, else ``{service_id}:{source_kind}:{cursor}:{sha256}``
of the canonical JSON of ``{service_id, source_kind, task_id, event_type,
timestamp, payload}``.

Timestamps are stored in one fixed form (``YYYY-MM-DDTHH:MM:SS.ffffffZ``) so
the insert script can compare them as strings.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from relayna.contracts import is_valid_identifier
from relayna.errors import ContractError
from relayna_studio._timefmt import parse_time

__all__ = ["dedupe_key", "fixed_time", "normalize_event", "normalize_event_json", "sort_key"]

SOURCE_KINDS = ("status", "observation")
INGEST_METHODS = ("push", "pull")
_TEXT_FIELDS = ("event_type", "component")
_ID_FIELDS = ("event_id", "correlation_id", "parent_task_id")
_ALLOWED = {
    "cursor",
    "task_id",
    "event_type",
    "source_kind",
    "component",
    "timestamp",
    "event_id",
    "correlation_id",
    "parent_task_id",
    "payload",
}
MAX_PAYLOAD_BYTES = 256 * 1024


def fixed_time(value: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` of a UTC time (``isoformat``: a C call, unlike
    ``strftime``; it also pads years before 1000, so the strings still sort)."""
    return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _fail(field: str, message: str) -> ContractError:
    return ContractError("invalid event", errors=[(field, message)])


def normalize_event(raw: object) -> dict[str, Any]:
    """A feed/push event → its stored fields (without the Studio fields).

    Raises:
        ContractError: a field of the wrong type, an invalid identifier, a
            bad timestamp, a payload that is not an object or too large.
    """
    return normalize_event_json(raw)[0]


def normalize_event_json(raw: object) -> tuple[dict[str, Any], bytes]:
    """:func:`normalize_event` and the payload's JSON (encoded once: the size
    check and the stored document share it).

    Raises:
        ContractError: as :func:`normalize_event`.
    """
    if not isinstance(raw, Mapping):
        raise _fail("event", "expected an object")
    unknown = sorted(str(k) for k in raw if k not in _ALLOWED)
    if unknown:
        raise _fail(unknown[0], "unknown field")
    task_id = raw.get("task_id")
    if not is_valid_identifier(task_id):
        raise _fail("task_id", "invalid identifier")
    source_kind = raw.get("source_kind")
    if source_kind not in SOURCE_KINDS:
        raise _fail("source_kind", "must be status or observation")
    out: dict[str, Any] = {"task_id": task_id, "source_kind": source_kind}
    for field in _TEXT_FIELDS:
        value = raw.get(field)
        if value is not None and (not isinstance(value, str) or not 0 < len(value) <= 200):
            raise _fail(field, "must be a string of 1..200 characters")
        out[field] = value
    if out["event_type"] is None:
        raise _fail("event_type", "field required")
    for field in _ID_FIELDS:
        value = raw.get(field)
        if value is not None and not is_valid_identifier(value):
            raise _fail(field, "invalid identifier")
        out[field] = value
    cursor = raw.get("cursor")
    if cursor is not None and (not isinstance(cursor, str) or not 0 < len(cursor) <= 256):
        raise _fail("cursor", "must be a string of 1..256 characters")
    timestamp = raw.get("timestamp")
    out["timestamp"] = None if timestamp is None else fixed_time(parse_time(timestamp))
    payload = raw.get("payload", {})
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise _fail("payload", "must be an object")
    try:
        encoded = orjson.dumps(payload)
    except (TypeError, orjson.JSONEncodeError):
        raise _fail("payload", "not JSON-serialisable") from None
    if len(encoded) > MAX_PAYLOAD_BYTES:
        raise _fail("payload", f"larger than {MAX_PAYLOAD_BYTES} bytes")
    out["payload"] = payload
    out["_cursor"] = cursor
    return out, encoded


def dedupe_key(service_id: str, event: Mapping[str, Any]) -> str:
    source_kind = event["source_kind"]
    if event.get("event_id"):
        return f"{service_id}:{source_kind}:{event['event_id']}"
    digest = hashlib.sha256(
        orjson.dumps(
            {
                "service_id": service_id,
                "source_kind": source_kind,
                "task_id": event["task_id"],
                "event_type": event["event_type"],
                "timestamp": event["timestamp"],
                "payload": event["payload"],
            },
            option=orjson.OPT_SORT_KEYS,
        )
    ).hexdigest()
    return f"{service_id}:{source_kind}:{event.get('_cursor') or ''}:{digest}"


def sort_key(event: Mapping[str, Any]) -> tuple[str, str, str]:
    """Newest first = descending on (timestamp, ingested_at, dedupe_key)."""
    return (
        str(event.get("timestamp") or event.get("ingested_at") or ""),
        str(event.get("ingested_at") or ""),
        str(event.get("dedupe_key") or ""),
    )
