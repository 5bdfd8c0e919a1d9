"""Conversion between relayna's wire-neutral values and pamqp's.

pamqp encodes ``bytearray`` (not ``bytes``) as a byte array and may decode long
strings as ``bytes``; relayna uses ``bytes`` throughout.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from pamqp import commands

from relayna.transport._broker import Properties

__all__ = ["from_pamqp_properties", "to_pamqp_properties", "to_wire_table", "from_wire_table"]


def _to_wire(value: Any) -> Any:
    if isinstance(value, bytes):
        return bytearray(value)
    if isinstance(value, Mapping):
        return {str(k): _to_wire(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_wire(v) for v in value]
    return value


def _from_wire(value: Any) -> Any:
    if isinstance(value, bytearray):
        return bytes(value)
    if isinstance(value, dict):
        return {k: _from_wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_wire(v) for v in value]
    return value


def to_wire_table(table: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not table:
        return None
    if _plain(table):  # the common case: string keys, scalar values
        return dict(table)
    result: dict[str, Any] = _to_wire(table)
    return result


# Values both directions pass through unchanged (bytes, tables and arrays are
# converted); stream deliveries carry an int, so ints are common too.
_SCALARS = frozenset({str, int, bool, float, type(None)})


def _plain(table: Mapping[Any, Any]) -> bool:
    for key, value in table.items():
        if type(key) is not str or type(value) not in _SCALARS:
            return False
    return True


def from_wire_table(table: Mapping[str, Any] | None) -> dict[str, Any]:
    if not table:
        return {}
    if _plain(table):
        return dict(table)
    result: dict[str, Any] = _from_wire(dict(table))
    return result


_EMPTY = commands.Basic.Properties()


def to_pamqp_properties(props: Properties | None) -> commands.Basic.Properties:
    if props is None:
        return _EMPTY
    return commands.Basic.Properties(
        content_type=props.content_type,
        content_encoding=props.content_encoding,
        headers=to_wire_table(props.headers),
        delivery_mode=props.delivery_mode,
        priority=props.priority,
        correlation_id=props.correlation_id,
        reply_to=props.reply_to,
        expiration=props.expiration,
        message_id=props.message_id,
        timestamp=props.timestamp,
        message_type=props.type,
        user_id=props.user_id,
        app_id=props.app_id,
    )


def _text(value: str | bytes | None) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def from_pamqp_properties(p: commands.Basic.Properties) -> Properties:
    ts = p.timestamp
    if isinstance(ts, datetime.datetime) and ts.tzinfo is None:
        ts = ts.replace(tzinfo=datetime.UTC)
    return Properties(
        content_type=_text(p.content_type),
        content_encoding=_text(p.content_encoding),
        headers=from_wire_table(p.headers),
        delivery_mode=p.delivery_mode,
        priority=p.priority,
        correlation_id=_text(p.correlation_id),
        reply_to=_text(p.reply_to),
        expiration=_text(p.expiration),
        message_id=_text(p.message_id),
        timestamp=ts,
        type=_text(p.message_type),
        user_id=_text(p.user_id),
        app_id=_text(p.app_id),
    )
