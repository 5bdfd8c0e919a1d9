"""Fast paths for the frames of the hot path: ``basic.deliver``/``basic.ack``/
``basic.nack`` and content headers (decode), content headers (encode).

Each function handles the common, well-formed case byte-for-byte like pamqp
and returns ``None`` for anything else (unusual property flags, odd table
values, truncated or trailing bytes...), so the caller falls back to pamqp,
which stays the authority for every edge case and every error.
"""

from __future__ import annotations

import struct
from typing import Any

from pamqp import commands, constants, encode, header
from pamqp.base import Frame as MethodFrame

__all__ = ["decode_header", "decode_method", "encode_header", "encode_publish"]

_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_I64 = struct.Struct(">q")  # pamqp decodes longlong as signed
_HEADER_PREFIX = struct.Struct(">HHQH")  # class id, weight, body size, flags
_FRAME_HEAD = struct.Struct(">BHIHxxQ")  # type, channel, size, class id, weight, body size

_Properties = commands.Basic.Properties
_Deliver = commands.Basic.Deliver
_Ack = commands.Basic.Ack
_Nack = commands.Basic.Nack

_DELIVER_INDEX = 0x003C003C
_ACK_INDEX = 0x003C0050
_NACK_INDEX = 0x003C0078

# Basic.Properties slots in wire order with their flag bit; "s" shortstr,
# "o" octet, "t" table. timestamp and cluster_id (and continuation flags)
# are left to pamqp.
_PROPERTY_SLOTS: tuple[tuple[str, int, str], ...] = (
    ("content_type", 0x8000, "s"),
    ("content_encoding", 0x4000, "s"),
    ("headers", 0x2000, "t"),
    ("delivery_mode", 0x1000, "o"),
    ("priority", 0x0800, "o"),
    ("correlation_id", 0x0400, "s"),
    ("reply_to", 0x0200, "s"),
    ("expiration", 0x0100, "s"),
    ("message_id", 0x0080, "s"),
    ("message_type", 0x0020, "s"),
    ("user_id", 0x0010, "s"),
    ("app_id", 0x0008, "s"),
)
_SUPPORTED_FLAGS = 0xFFB8  # every flag above (no timestamp 0x40, cluster_id 0x4, continuation 0x1)
_SLOT_SETTERS = {name: _Properties.__dict__[name].__set__ for name in _Properties.__slots__}


# -- decoding ---------------------------------------------------------------------


def _short_str(data: bytes, pos: int) -> tuple[str, int]:
    n = data[pos]
    end = pos + 1 + n
    if end > len(data):
        raise ValueError("truncated")
    return data[pos + 1 : end].decode("utf-8"), end


# Integer field types as pamqp decodes them ("l" and "L" both signed).
_INT_FIELDS: dict[int, struct.Struct] = {
    ord("b"): struct.Struct(">b"),
    ord("B"): _U8,
    ord("s"): struct.Struct(">h"),
    ord("u"): _U16,
    ord("I"): struct.Struct(">l"),
    ord("i"): struct.Struct(">L"),
    ord("l"): _I64,
    ord("L"): _I64,
}


def _table(data: bytes, pos: int) -> tuple[dict[str, Any], int]:
    """A table of long strings, booleans and integers (anything else:
    ValueError -> pamqp). Stream deliveries carry ``x-stream-offset`` (a
    long-long), so integers are on the consume hot path."""
    (length,) = _U32.unpack_from(data, pos)
    pos += 4
    end = pos + length
    if end > len(data):
        raise ValueError("truncated")
    table: dict[str, Any] = {}
    while pos < end:
        key, pos = _short_str(data, pos)
        kind = data[pos]
        value: Any
        if kind == 0x53:  # "S"
            (n,) = _U32.unpack_from(data, pos + 1)
            start = pos + 5
            pos = start + n
            if pos > end:
                raise ValueError("truncated")
            value = data[start:pos].decode("utf-8")
        elif kind == 0x74:  # "t"
            value = bool(data[pos + 1])
            pos += 2
        else:
            fmt = _INT_FIELDS.get(kind)
            if fmt is None:
                raise ValueError("unsupported field type")
            (value,) = fmt.unpack_from(data, pos + 1)
            pos += 1 + fmt.size
        if pos > end:
            raise ValueError("truncated")
        table[key] = value
    if pos != end:
        raise ValueError("bad table length")
    return table, pos


def decode_method(index: int, payload: bytes) -> MethodFrame | None:
    """``basic.deliver``/``ack``/``nack`` from a method payload (after the index)."""
    try:
        if index == _DELIVER_INDEX:
            consumer_tag, pos = _short_str(payload, 0)
            (tag,) = _I64.unpack_from(payload, pos)
            redelivered = payload[pos + 8]
            exchange, pos = _short_str(payload, pos + 9)
            routing_key, pos = _short_str(payload, pos)
            if pos != len(payload) or redelivered > 1:
                return None
            deliver = _Deliver.__new__(_Deliver)
            deliver.consumer_tag = consumer_tag
            deliver.delivery_tag = tag
            deliver.redelivered = bool(redelivered)
            deliver.exchange = exchange
            deliver.routing_key = routing_key
            return deliver
        if index == _ACK_INDEX or index == _NACK_INDEX:
            if len(payload) != 9:
                return None
            (tag,) = _I64.unpack_from(payload, 0)
            bits = payload[8]
            if index == _ACK_INDEX:
                if bits > 1:
                    return None
                ack = _Ack.__new__(_Ack)
                ack.delivery_tag = tag
                ack.multiple = bool(bits)
                return ack
            if bits > 3:
                return None
            nack = _Nack.__new__(_Nack)
            nack.delivery_tag = tag
            nack.multiple = bool(bits & 1)
            nack.requeue = bool(bits & 2)
            return nack
    except (ValueError, IndexError, struct.error):
        return None
    return None


def decode_header(payload: bytes) -> header.ContentHeader | None:
    """A content header whose properties are all supported; else None."""
    try:
        class_id, weight, body_size, flags = _HEADER_PREFIX.unpack_from(payload, 0)
        if flags & ~_SUPPORTED_FLAGS & 0xFFFF:
            return None
        props = _Properties.__new__(_Properties)
        setters = _SLOT_SETTERS
        for name in _Properties.__slots__:
            setters[name](props, None)
        props.cluster_id = ""  # what Basic.Properties() starts with
        pos = 14
        for name, bit, kind in _PROPERTY_SLOTS:
            if not flags & bit:
                continue
            value: Any
            if kind == "s":
                value, pos = _short_str(payload, pos)
            elif kind == "o":
                value = payload[pos]
                pos += 1
            else:
                value, pos = _table(payload, pos)
            setters[name](props, value)
        if pos != len(payload):
            return None
    except (ValueError, IndexError, struct.error):
        return None
    content = header.ContentHeader.__new__(header.ContentHeader)
    content.class_id = class_id
    content.weight = weight
    content.body_size = body_size
    content.properties = props
    return content


# -- encoding ---------------------------------------------------------------------


def _encode_table(table: dict[str, Any]) -> bytes | None:
    parts: list[bytes] = []
    for key, value in sorted(table.items()):
        raw = key.encode("utf-8")
        if len(raw) > 128:  # pamqp truncates (with a warning): let it
            return None
        parts.append(_U8.pack(len(raw)))
        parts.append(raw)
        if type(value) is str:
            data = value.encode("utf-8")
            parts.append(b"S")
            parts.append(_U32.pack(len(data)))
            parts.append(data)
        else:
            parts.append(encode.encode_table_value(value))
    out = b"".join(parts)
    return _U32.pack(len(out)) + out


def _encode_properties(props: commands.Basic.Properties) -> tuple[int, list[bytes]] | None:
    if props.timestamp is not None or props.cluster_id:
        return None
    flags = 0
    parts: list[bytes] = []
    for name, bit, kind in _PROPERTY_SLOTS:
        value = getattr(props, name)
        if value is None or value == "":
            continue
        if kind == "s":
            if type(value) is not str:
                return None
            data = value.encode("utf-8")
            if len(data) > 255:
                return None
            parts.append(_U8.pack(len(data)))
            parts.append(data)
        elif kind == "o":
            if type(value) is not int or not 0 <= value <= 255:
                return None
            parts.append(_U8.pack(value))
        else:
            if type(value) is not dict or not all(type(k) is str for k in value):
                return None
            table = _encode_table(value) if value else b"\x00\x00\x00\x00"
            if table is None:
                return None
            parts.append(table)
        flags |= bit
    return flags, parts


def encode_header(channel: int, body_size: int, props: commands.Basic.Properties) -> bytes | None:
    """The content header frame pamqp would marshal, or None (use pamqp)."""
    encoded = _encode_properties(props)
    if encoded is None:
        return None
    flags, parts = encoded
    rest = b"".join(parts)
    return (
        _FRAME_HEAD.pack(2, channel, 14 + len(rest), 60, body_size)
        + _U16.pack(flags)
        + rest
        + b"\xce"
    )


_PUBLISH_HEAD = struct.Struct(">BHIIHB")  # type, channel, size, index, ticket, exchange length
_EXCHANGE_NAME = constants.DOMAIN_REGEX["exchange-name"].fullmatch


def encode_publish(channel: int, exchange: str, routing_key: str, mandatory: bool) -> bytes | None:
    """The ``basic.publish`` method frame pamqp would marshal, or None (use pamqp,
    which also validates the exchange name and raises)."""
    if type(exchange) is not str or type(routing_key) is not str or type(mandatory) is not bool:
        return None
    if len(exchange) > 127 or not _EXCHANGE_NAME(exchange):
        return None
    ex = exchange.encode("utf-8")
    rk = routing_key.encode("utf-8")
    if len(ex) > 255 or len(rk) > 255:
        return None
    size = 9 + len(ex) + len(rk)  # index 4, ticket 2, two lengths, bits 1
    return b"".join(
        (
            _PUBLISH_HEAD.pack(1, channel, size, 0x003C0028, 0, len(ex)),
            ex,
            _U8.pack(len(rk)),
            rk,
            b"\x01\xce" if mandatory else b"\x00\xce",
        )
    )
