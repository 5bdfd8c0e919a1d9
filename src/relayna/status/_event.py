"""The status-event adapter: the one place that knows the wire shape.

Everything in :mod:`relayna.status` handles a status event as its wire dict
(``task_id``, ``status``, ``event_id``, ``meta`` ...), which is exactly what
is stored in Redis and sent on SSE. Decoding and validation go through
:mod:`relayna.contracts` (the strict decoder, identifier rule, event-id
rule), so this module is a thin bridge.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import Any, TypeAlias

import orjson

from relayna.contracts import (
    ContractAliasConfig,
    TerminalStatusSet,
    decode_status,
    decoder_failure,
    ensure_event_id,
    is_valid_identifier,
    unstructure,
    validate_identifier,
)
from relayna.errors import ContractError

__all__ = [
    "EventDict",
    "TerminalStatusSet",
    "decode_status_body",
    "dumps_event",
    "event_id_of",
    "is_valid_identifier",
    "loads_stored",
    "status_of",
    "validate_identifier",
]

#: A status event as its wire dict (JSON types only).
EventDict: TypeAlias = dict[str, Any]


def decode_status_body(
    body: bytes,
    *,
    sanitize_meta_keys: AbstractSet[str] = frozenset(),
    aliases: ContractAliasConfig | None = None,
) -> EventDict:
    """Decode, validate and normalise one status message body.

    The result always carries a valid ``task_id`` and ``event_id`` (filled
    with the deterministic content hash when the publisher sent none), and
    ``meta`` without the sanitised keys.

    Raises:
        ContractError: with ``reason`` ``too_large``, ``too_deep``,
            ``decode_error``, ``invalid_json``, ``schema`` or
            ``decoder_error`` (anything else that failed on this body; the
            original exception is the cause). Nothing else: callers skip or
            dead-letter on ``ContractError`` and go on.
    """
    try:
        return _decode_status_body(body, sanitize_meta_keys, aliases)
    except ContractError:
        raise
    except Exception as exc:  # the decode boundary: see decoder_failure
        raise decoder_failure(exc, "status event") from exc


def _decode_status_body(
    body: bytes, sanitize_meta_keys: AbstractSet[str], aliases: ContractAliasConfig | None
) -> EventDict:
    wire = unstructure(ensure_event_id(decode_status(body, aliases=aliases)))
    meta = wire.get("meta")
    if meta and isinstance(meta, dict) and not sanitize_meta_keys.isdisjoint(meta):
        wire["meta"] = {k: v for k, v in meta.items() if k not in sanitize_meta_keys}
    return wire


def dumps_event(event: Mapping[str, Any]) -> bytes:
    """Compact one-line JSON for Redis and SSE."""
    return orjson.dumps(event)


def loads_stored(raw: bytes) -> EventDict:
    """Parse one stored history entry.

    Raises:
        ContractError: reason ``invalid_json`` or ``schema`` (not an object
            with a valid ``task_id`` and ``event_id``).
    """
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ContractError("stored status is not JSON", reason="invalid_json") from exc
    if (
        not isinstance(value, dict)
        or not is_valid_identifier(value.get("task_id"))
        or not is_valid_identifier(value.get("event_id"))
    ):
        raise ContractError("stored status lacks task_id/event_id", reason="schema")
    return value


def event_id_of(event: Mapping[str, Any]) -> str:
    return str(event["event_id"])


def status_of(event: Mapping[str, Any]) -> str | None:
    status = event.get("status")
    return status if isinstance(status, str) else None
