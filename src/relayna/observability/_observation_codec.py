"""Encoding an observation once: the stored record, its dedupe token, its feed item.

The observation store's entry, its dedupe token and the service event feed's
item are all derived from one sorted-key JSON encoding of the record: the
token is the sha256 of those bytes and the feed item embeds them as its
``payload`` (spliced in, not encoded again).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import attrs
import orjson

from relayna.contracts import is_valid_identifier
from relayna.observability._graph_model import format_timestamp
from relayna.observability._observations import Observation

__all__ = [
    "EncodedObservation",
    "encode_observation",
    "encode_observation_feed_item",
    "observation_feed_item",
    "observation_record",
    "observation_token",
]


def observation_record(event: Observation | Mapping[str, Any]) -> dict[str, Any]:
    """The stored JSON shape: the event's fields, ``event_type``, ``timestamp`` (UTC, ms)."""
    if isinstance(event, Observation):
        data = attrs.asdict(event, recurse=False)
        data["timestamp"] = format_timestamp(event.timestamp)
        data["event_type"] = event.event_type
        return data
    return dict(event)


def observation_token(record: Mapping[str, Any]) -> str:
    """sha256 of the normalised record (sorted-key JSON): the dedupe token."""
    return hashlib.sha256(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)).hexdigest()


@attrs.frozen
class EncodedObservation:
    """An observation encoded once for every write it takes part in.

    ``payload`` is the normalised record (sorted-key JSON: the stored entry)
    and ``token`` the sha256 of those bytes, equal to :func:`observation_token`
    of the record.
    """

    task_id: str
    record: dict[str, Any]
    payload: bytes
    token: str


def encode_observation(event: Observation | Mapping[str, Any]) -> EncodedObservation | None:
    """The record, its payload and token; None when it has no valid task id."""
    record = observation_record(event)
    task_id = record.get("task_id")
    if not is_valid_identifier(task_id):
        return None
    payload = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
    return EncodedObservation(task_id, record, payload, hashlib.sha256(payload).hexdigest())


def _feed_head(encoded: EncodedObservation) -> dict[str, Any]:
    record = encoded.record
    return {
        "task_id": encoded.task_id,
        "event_type": record.get("event_type"),
        "source_kind": "observation",
        "component": record.get("component"),
        "timestamp": record.get("timestamp"),
        "event_id": encoded.token,
        "correlation_id": record.get("correlation_id"),
        "parent_task_id": record.get("parent_task_id"),
    }


def encode_observation_feed_item(encoded: EncodedObservation) -> tuple[str, bytes]:
    """``(event_key, item JSON)`` of the feed entry, the payload spliced in as is."""
    head = orjson.dumps(_feed_head(encoded))
    return f"observation:{encoded.token}", head[:-1] + b',"payload":' + encoded.payload + b"}"


def observation_feed_item(
    event: Observation | Mapping[str, Any],
) -> tuple[str, dict[str, Any]] | None:
    """``(event_key, item)`` for an observation, None when it has no valid task id."""
    encoded = encode_observation(event)
    if encoded is None:
        return None
    item = _feed_head(encoded)
    item["payload"] = encoded.record
    return f"observation:{encoded.token}", item
