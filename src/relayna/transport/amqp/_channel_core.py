"""Per-channel protocol state without I/O.

Theory of operation
-------------------
A channel goes ``OPENING -> OPEN -> CLOSING -> CLOSED`` (or straight to
``CLOSED`` when the server sends ``channel.close``). While open it does three
pieces of bookkeeping:

* **Content assembly.** ``basic.deliver`` / ``basic.return`` / ``basic.get-ok``
  start a content; the next frame on the channel must be a content header and
  then body frames until ``body_size`` bytes arrived. Anything else in between
  is a protocol error.
* **Publisher confirms.** After ``confirm.select`` every publish gets the next
  delivery tag (1, 2, ...). ``basic.ack``/``basic.nack`` settle one tag, or with
  ``multiple`` every outstanding tag up to and including it.
* **Mandatory returns.** RabbitMQ sends ``basic.return`` *before* the ack of the
  same message. A return carries no delivery tag, so it is matched to the oldest
  outstanding, not yet returned publish with the same exchange, routing key and
  body; that publish's ack then settles as ``"returned"``.
"""

from __future__ import annotations

import enum

from pamqp import commands, header
from pamqp.base import Frame as MethodFrame

from relayna.transport.amqp._events import (
    ChannelClosedByPeer,
    Confirmed,
    ConsumerCancelledByPeer,
    DeliveryReady,
    Event,
    MethodReply,
    ReturnInfo,
)
from relayna.transport.amqp._frames import FrameError

__all__ = ["ChannelCore", "ChannelState"]


class ChannelState(enum.Enum):
    OPENING = "OPENING"
    OPEN = "OPEN"
    CLOSING = "CLOSING"
    CLOSED = "CLOSED"


class _Pending:
    __slots__ = ("body", "exchange", "returned", "routing_key")

    def __init__(self, exchange: str, routing_key: str, body: bytes) -> None:
        self.exchange = exchange
        self.routing_key = routing_key
        self.body = body
        self.returned: ReturnInfo | None = None


_SYNC_REPLIES: tuple[type[MethodFrame], ...] = (
    commands.Channel.OpenOk,
    commands.Channel.CloseOk,
    commands.Channel.FlowOk,
    commands.Basic.QosOk,
    commands.Basic.ConsumeOk,
    commands.Basic.CancelOk,
    commands.Basic.GetEmpty,
    commands.Basic.RecoverOk,
    commands.Confirm.SelectOk,
    commands.Queue.DeclareOk,
    commands.Queue.BindOk,
    commands.Queue.UnbindOk,
    commands.Queue.PurgeOk,
    commands.Queue.DeleteOk,
    commands.Exchange.DeclareOk,
    commands.Exchange.DeleteOk,
    commands.Exchange.BindOk,
    commands.Exchange.UnbindOk,
    commands.Tx.SelectOk,
    commands.Tx.CommitOk,
    commands.Tx.RollbackOk,
)


class ChannelCore:
    """State of one channel. The connection core routes frames here."""

    def __init__(self, channel_id: int) -> None:
        self.id = channel_id
        self.state = ChannelState.OPENING
        self.confirm_mode = False
        self.next_publish_tag = 1
        self.pending: dict[int, _Pending] = {}
        self._content_method: (
            commands.Basic.Deliver | commands.Basic.Return | commands.Basic.GetOk | None
        ) = None
        self._content_props: commands.Basic.Properties | None = None
        self._content_size = 0
        self._content_parts: list[bytes] = []
        self._content_received = 0
        self.outbound: list[MethodFrame] = []  # replies the core must send

    # -- outgoing -----------------------------------------------------------
    def register_publish(self, exchange: str, routing_key: str, body: bytes) -> int:
        """Record a publish; returns its delivery tag (0 when not in confirm mode)."""
        if not self.confirm_mode:
            return 0
        tag = self.next_publish_tag
        self.next_publish_tag += 1
        self.pending[tag] = _Pending(exchange, routing_key, body)
        return tag

    def forget_publishes(self) -> list[int]:
        """Drop every outstanding tag (channel or connection gone); returns them."""
        tags = list(self.pending)
        self.pending.clear()
        return tags

    # -- incoming -----------------------------------------------------------
    @property
    def assembling(self) -> bool:
        return self._content_method is not None

    def handle_method(self, method: MethodFrame) -> list[Event]:
        if self._content_method is not None:
            raise FrameError(f"channel {self.id}: {method.name} in the middle of a content")
        if isinstance(
            method, commands.Basic.Deliver | commands.Basic.Return | commands.Basic.GetOk
        ):
            self._content_method = method
            return []
        if isinstance(method, commands.Basic.Ack):
            return self._settle(method.delivery_tag, method.multiple, "ack")
        if isinstance(method, commands.Basic.Nack):
            return self._settle(method.delivery_tag, method.multiple, "nack")
        if isinstance(method, commands.Channel.Close):
            self.state = ChannelState.CLOSED
            self.outbound.append(commands.Channel.CloseOk())
            return [
                ChannelClosedByPeer(
                    self.id,
                    method.reply_code or 0,
                    method.reply_text or "",
                    method.class_id or 0,
                    method.method_id or 0,
                )
            ]
        if isinstance(method, commands.Basic.Cancel):
            if not method.nowait:
                self.outbound.append(commands.Basic.CancelOk(consumer_tag=method.consumer_tag))
            return [ConsumerCancelledByPeer(self.id, method.consumer_tag or "")]
        if isinstance(method, commands.Channel.Flow):
            self.outbound.append(commands.Channel.FlowOk(active=method.active))
            return []
        if isinstance(method, _SYNC_REPLIES):
            if isinstance(method, commands.Channel.OpenOk):
                self.state = ChannelState.OPEN
            elif isinstance(method, commands.Channel.CloseOk):
                self.state = ChannelState.CLOSED
            elif isinstance(method, commands.Confirm.SelectOk):
                self.confirm_mode = True
            return [MethodReply(self.id, method)]
        raise FrameError(f"channel {self.id}: unexpected method {method.name}")

    def handle_header(self, content: header.ContentHeader) -> list[Event]:
        if self._content_method is None or self._content_props is not None:
            raise FrameError(f"channel {self.id}: unexpected content header")
        self._content_props = content.properties
        self._content_size = content.body_size
        self._content_received = 0
        self._content_parts = []
        if content.body_size == 0:
            return self._finish_content()
        return []

    def handle_body(self, data: bytes) -> list[Event]:
        if self._content_props is None:
            raise FrameError(f"channel {self.id}: unexpected content body")
        self._content_parts.append(data)
        self._content_received += len(data)
        if self._content_received > self._content_size:
            raise FrameError(f"channel {self.id}: content body larger than announced")
        if self._content_received == self._content_size:
            return self._finish_content()
        return []

    def _finish_content(self) -> list[Event]:
        method, props = self._content_method, self._content_props
        assert method is not None
        assert props is not None
        parts = self._content_parts
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        self._content_method = self._content_props = None
        self._content_parts = []
        if isinstance(method, commands.Basic.Return):
            self._match_return(method, body)
            return []
        return [DeliveryReady(self.id, method, props, body)]

    def _match_return(self, method: commands.Basic.Return, body: bytes) -> None:
        info = ReturnInfo(
            method.reply_code or 0,
            method.reply_text or "",
            method.exchange or "",
            method.routing_key or "",
        )
        for pending in self.pending.values():
            if (
                pending.returned is None
                and pending.exchange == method.exchange
                and pending.routing_key == method.routing_key
                and pending.body == body
            ):
                pending.returned = info
                return
        # A return for a publish not in confirm mode (or already settled): nothing to settle.

    def _settle(self, tag: int, multiple: bool, outcome: str) -> list[Event]:
        pending = self.pending
        if multiple:
            tags = []
            for t in pending:  # insertion order == ascending tags
                if tag and t > tag:
                    break
                tags.append(t)
        elif tag in pending:
            tags = [tag]
        else:
            return []
        events: list[Event] = []
        for t in tags:
            p = pending.pop(t)
            if outcome == "ack" and p.returned is not None:
                events.append(Confirmed(self.id, t, "returned", p.returned))
            else:
                events.append(Confirmed(self.id, t, "ack" if outcome == "ack" else "nack"))
        return events
