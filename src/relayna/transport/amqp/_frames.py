"""AMQP 0-9-1 framing without I/O: a frame reader that never relies on pamqp's
exception for partial input, and frame writers that split bodies at frame-max.

A frame on the wire is ``type:u8 channel:u16 size:u32 payload[size] 0xCE``.
The reader checks the 7-byte header, the announced size against frame-max and
the frame-end octet *before* handing the payload to pamqp, and returns
:data:`NEED_DATA` when more bytes are required.
"""

from __future__ import annotations

import enum
import struct
from typing import Final, TypeAlias

from pamqp import commands, header
from pamqp import frame as pamqp_frame
from pamqp.base import Frame as MethodFrame

from relayna.transport.amqp._fastcodec import decode_header, decode_method, encode_header

__all__ = [
    "FRAME_BODY",
    "FRAME_HEADER",
    "FRAME_HEARTBEAT",
    "FRAME_METHOD",
    "HEARTBEAT_BYTES",
    "NEED_DATA",
    "PROTOCOL_HEADER",
    "FrameError",
    "FrameReader",
    "NeedData",
    "ReadFrame",
    "encode_ack",
    "encode_content",
    "encode_method",
]

FRAME_METHOD: Final = 1
FRAME_HEADER: Final = 2
FRAME_BODY: Final = 3
FRAME_HEARTBEAT: Final = 8
FRAME_END: Final = 0xCE
_HEADER = struct.Struct(">BHI")
_METHOD_INDEX = struct.Struct(">I")
PROTOCOL_HEADER: Final = b"AMQP\x00\x00\x09\x01"
HEARTBEAT_BYTES: Final = b"\x08\x00\x00\x00\x00\x00\x00\xce"


class FrameError(ValueError):
    """The peer sent bytes that are not a valid AMQP frame (or an oversized one)."""


class NeedData(enum.Enum):
    NEED_DATA = "NEED_DATA"


NEED_DATA: Final = NeedData.NEED_DATA

#: (frame type, channel, payload): a pamqp method, a ContentHeader, body bytes, or None.
ReadFrame: TypeAlias = tuple[int, int, MethodFrame | header.ContentHeader | bytes | None]


class FrameReader:
    """Incremental frame parser. Feed bytes with :meth:`feed`, pull frames with
    :meth:`next_frame` until it returns :data:`NEED_DATA`.

    ``frame_max`` bounds the total frame size (header + payload + end octet),
    as negotiated in ``connection.tune``; 0 means unlimited.
    """

    def __init__(self, frame_max: int = 131072) -> None:
        self.frame_max = frame_max
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes) -> None:
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def next_frame(self) -> ReadFrame | NeedData:
        buf, pos = self._buf, self._pos
        avail = len(buf) - pos
        if avail < 7:
            if avail >= 1 and buf[pos] == 0x41:  # "A": the server sent its protocol header
                raise FrameError("server rejected the protocol version (sent a protocol header)")
            return NEED_DATA
        ftype, channel, size = _HEADER.unpack_from(buf, pos)
        if ftype not in (FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT):
            if buf[pos : pos + 4] == b"AMQP":
                raise FrameError("server rejected the protocol version (sent a protocol header)")
            raise FrameError(f"unknown frame type {ftype}")
        if self.frame_max and size + 8 > self.frame_max:
            raise FrameError(f"frame of {size + 8} bytes exceeds frame-max {self.frame_max}")
        end = pos + 7 + size
        if avail < size + 8:
            return NEED_DATA
        if buf[end] != FRAME_END:
            raise FrameError(f"bad frame-end octet 0x{buf[end]:02x}")
        self._pos = end + 1
        if ftype == FRAME_BODY:
            return ftype, channel, bytes(buf[pos + 7 : end])
        if ftype == FRAME_HEARTBEAT:
            return ftype, channel, None
        payload = bytes(buf[pos + 7 : end])
        try:
            if ftype == FRAME_METHOD:
                (index,) = _METHOD_INDEX.unpack_from(payload, 0)
                fast = decode_method(index, payload[4:])
                if fast is not None:
                    return ftype, channel, fast
                cls = commands.INDEX_MAPPING.get(index)
                if cls is None:
                    raise FrameError(f"unknown method index 0x{index:08x}")
                method: MethodFrame = cls()
                method.unmarshal(payload[4:])
                return ftype, channel, method
            content = decode_header(payload)
            if content is None:
                content = header.ContentHeader()
                content.unmarshal(payload)
            return ftype, channel, content
        except FrameError:
            raise
        except (struct.error, ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
            raise FrameError(f"cannot decode frame of type {ftype}: {exc}") from exc


def encode_method(channel: int, method: MethodFrame) -> bytes:
    """Marshal one method frame."""
    return pamqp_frame.marshal(method, channel)


_ACK = struct.Struct(">BHIHHQBB")


def encode_ack(channel: int, delivery_tag: int, *, multiple: bool = False) -> bytes:
    """Fast path for ``basic.ack`` (class 60, method 80)."""
    return _ACK.pack(FRAME_METHOD, channel, 13, 60, 80, delivery_tag, multiple, FRAME_END)


def encode_content(
    channel: int,
    method: MethodFrame | None,
    properties: commands.Basic.Properties,
    body: bytes,
    frame_max: int,
    *,
    method_bytes: bytes | None = None,
) -> bytes:
    """Marshal method + content header + body frames (bodies split at frame-max)."""
    if method_bytes is None:
        assert method is not None
        method_bytes = pamqp_frame.marshal(method, channel)
    content_header = encode_header(channel, len(body), properties)
    if content_header is None:
        content_header = pamqp_frame.marshal(
            header.ContentHeader(0, len(body), properties), channel
        )
    if not body:
        return method_bytes + content_header
    if frame_max == 0 or len(body) <= frame_max - 8:  # the common case: one body frame
        body_head = _HEADER.pack(FRAME_BODY, channel, len(body))
        return b"".join((method_bytes, content_header, body_head, body, b"\xce"))
    parts = [method_bytes, content_header]
    chunk = (frame_max - 8) if frame_max else len(body) or 1
    view = memoryview(body)
    for start in range(0, len(body), chunk):
        piece = view[start : start + chunk]
        parts.append(_HEADER.pack(FRAME_BODY, channel, len(piece)))
        parts.append(piece.tobytes())
        parts.append(b"\xce")
    return b"".join(parts)
