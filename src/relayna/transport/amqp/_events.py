"""Events emitted by the sans-IO AMQP core (see :mod:`._core`)."""

from __future__ import annotations

from typing import Any, Literal

import attrs
from pamqp import commands
from pamqp.base import Frame as MethodFrame

__all__ = [
    "Blocked",
    "ChannelClosedByPeer",
    "Confirmed",
    "ConnectionCloseOk",
    "ConnectionClosedByPeer",
    "ConsumerCancelledByPeer",
    "DeliveryReady",
    "Event",
    "HandshakeComplete",
    "MethodReply",
    "ReturnInfo",
    "Unblocked",
]


@attrs.frozen
class HandshakeComplete:
    channel_max: int
    frame_max: int
    heartbeat: int
    server_properties: dict[str, Any]


@attrs.frozen
class MethodReply:
    """A synchronous reply (``*-ok``) for the oldest outstanding request on a channel."""

    channel: int
    method: MethodFrame


@attrs.frozen
class DeliveryReady:
    channel: int
    method: commands.Basic.Deliver | commands.Basic.GetOk
    properties: commands.Basic.Properties
    body: bytes


@attrs.frozen
class ReturnInfo:
    reply_code: int
    reply_text: str
    exchange: str
    routing_key: str


@attrs.frozen
class Confirmed:
    """The outcome of one publish in confirm mode."""

    channel: int
    delivery_tag: int
    outcome: Literal["ack", "nack", "returned"]
    returned: ReturnInfo | None = None


@attrs.frozen
class ChannelClosedByPeer:
    channel: int
    reply_code: int
    reply_text: str
    class_id: int
    method_id: int


@attrs.frozen
class ConsumerCancelledByPeer:
    channel: int
    consumer_tag: str


@attrs.frozen
class ConnectionClosedByPeer:
    reply_code: int
    reply_text: str
    during_handshake: bool


@attrs.frozen
class ConnectionCloseOk:
    pass


@attrs.frozen
class Blocked:
    reason: str


@attrs.frozen
class Unblocked:
    pass


Event = (
    HandshakeComplete
    | MethodReply
    | DeliveryReady
    | Confirmed
    | ChannelClosedByPeer
    | ConsumerCancelledByPeer
    | ConnectionClosedByPeer
    | ConnectionCloseOk
    | Blocked
    | Unblocked
)
