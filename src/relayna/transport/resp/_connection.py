"""One Redis connection shared by every caller, pipelined, on anyio.

Callers queue their encoded commands and a :class:`_Pending` for their replies
(the order of the queue is the order of the writes and of the replies).
Whoever finds nobody writing becomes the writer: it writes its own commands
and then, in one write each time, everything other callers queued while it
was writing, until nothing is left (auto-pipelining: concurrent callers cost
one socket write per batch, not one each). The byte streams of the asyncio
and trio adapters (``_io_asyncio``, ``_io_trio``) write without yielding, so
a writer that finds other callers waiting for replies first yields once
(shielded) to let the callers ready to run queue theirs. Whoever finds
nobody reading becomes the reader: it reads replies for the queue's head,
handing completed replies to their callers, until its own are complete, then
passes the reading role to the next waiting caller. A caller alone on the
connection therefore writes and reads itself: a round trip costs the socket
wake-up and no hand-over between tasks; concurrent callers share one
connection and one read per batch of replies, and the number of connections
does not grow with them.

Cancellation never desynchronises the connection: a caller cancelled before
its commands went out takes them back out of the queue; one cancelled after
leaves its :class:`_Pending` marked abandoned and the next reader reads and
drops those replies (the parser keeps partial input). A write carrying other
callers' commands is shielded from the writer's cancellation (bytes half
written would break the connection for all of them) and bounded by
``stream_timeout`` (else ``connect_timeout``) instead. A caller cancelled
during the write of its own commands, a write that fails or times out, a
lost connection or bytes that are not RESP break the connection: every
queued caller gets :class:`StoreConnectionLost`.
"""

from __future__ import annotations

import select
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel

from relayna.errors import StoreConnectionLost
from relayna.transport.resp._protocol import NEED_DATA, ReplyParser, encode_command
from relayna.transport.resp._url import RespParams

__all__ = ["IO_ERRORS", "RespConnection"]

READ_SIZE = 1 << 16
IO_ERRORS = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)
_poll = getattr(select, "poll", None)  # not on Windows: idle connections are then not checked


class _Pending:
    __slots__ = ("abandoned", "remaining", "replies", "sent", "since", "turn")

    def __init__(self, count: int) -> None:
        self.since = time.monotonic()  # for the stream_timeout watchdog
        self.remaining = count
        self.sent = False  # taken by the writer: its commands are (being) written
        self.replies: list[Any] = []
        self.turn: anyio.Event | None = None  # set: your replies are in, or read them
        self.abandoned = False


class RespConnection:
    """A connected, authenticated stream, its reply parser and its callers' queue."""

    def __init__(self, stream: anyio.abc.ByteStream, params: RespParams) -> None:
        self.stream = stream
        self.params = params
        self.parser = ReplyParser()
        # The idle check runs before every command: its socket is looked up and
        # its poll object made once.
        # A stream that reads ahead (asyncio's protocol) knows it was closed.
        self._peer_closed: Callable[[], bool] | None = getattr(stream, "peer_closed", None)
        self._raw: Any = stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
        self._idle_poll: Any = None
        if self._peer_closed is not None:
            pass
        elif self._raw is not None and _poll is not None and self._raw.fileno() >= 0:
            self._idle_poll = _poll()
            self._idle_poll.register(self._raw.fileno(), select.POLLIN)
        self.error: StoreConnectionLost | None = None
        self._queue: deque[_Pending] = deque()
        self._unsent: list[tuple[bytes, _Pending]] = []  # queued, not yet written
        self._writing = False
        self._reading = False
        timeout = params.stream_timeout
        self._write_timeout = timeout if timeout is not None else params.connect_timeout

    @property
    def broken(self) -> bool:
        return self.error is not None

    @property
    def idle(self) -> bool:
        """Nothing in flight: no caller waits for a reply."""
        return not self._queue

    def oldest_since(self) -> float | None:
        """When (``time.monotonic``) the oldest caller still waiting for replies
        queued; None: nobody waits. A cancelled caller's replies still due
        count for nobody: the next caller drops them when it reads."""
        for pending in self._queue:
            if not pending.abandoned:
                return pending.since
        return None

    @property
    def unsent(self) -> int:
        """Callers whose commands wait for the write in flight (not yet written)."""
        return len(self._unsent)

    def fail(self, error: StoreConnectionLost) -> StoreConnectionLost:
        """Break the connection: every queued caller raises ``error``.

        Returns the error the connection failed with (the first one, when it
        had failed already), for the caller to raise.
        """
        if self.error is None:
            self.error = error
        for pending in self._queue:
            if pending.turn is not None:
                pending.turn.set()
        self._queue.clear()
        self._unsent.clear()
        return self.error

    async def send(self, data: bytes) -> None:
        """Write ``data`` as is (pubsub, handshake); a failure breaks the connection."""
        try:
            await self.stream.send(data)
        except IO_ERRORS as exc:
            lost = StoreConnectionLost(f"Redis connection lost: {exc!r}", url=self.params.url)
            raise self.fail(lost) from None

    async def read_reply(self) -> Any:
        """The next reply (an :class:`ErrorReply` is returned, not raised).

        Raises:
            StoreConnectionLost: closed by the server, or not RESP.
        """
        parser = self.parser
        while True:
            try:
                reply = parser.next_reply()
            except StoreConnectionLost as exc:
                await self._break(exc)
                raise
            if reply is not NEED_DATA:
                return reply
            try:
                data = await self.stream.receive(READ_SIZE)
            except IO_ERRORS as exc:
                what = (
                    "closed the connection"
                    if isinstance(exc, anyio.EndOfStream)
                    else f"connection lost while reading: {exc!r}"
                )
                raise self.fail(StoreConnectionLost(f"Redis {what}", url=self.params.url)) from None
            parser.feed(data)

    async def roundtrip(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Send ``commands`` (with whatever other callers queued meanwhile) and
        return one reply each, in order.

        Raises:
            StoreConnectionLost: the connection broke before every reply was read.
        """
        if self.error is not None:
            raise self.error
        data = b"".join([encode_command(c) for c in commands])
        pending = _Pending(len(commands))
        await anyio.lowlevel.checkpoint_if_cancelled()  # a cancelled caller queues nothing
        self._queue.append(pending)  # before the write: a reply may follow at once
        self._unsent.append((data, pending))
        try:
            if not self._writing:
                await self._write_unsent(pending)
            while pending.remaining:
                if self.error is not None:
                    raise self.error
                if self._reading:
                    pending.turn = anyio.Event()
                    await pending.turn.wait()
                    continue
                self._reading = True
                try:
                    await self._read_until(pending)
                finally:
                    self._reading = False
                self._pass_turn()
        except BaseException:
            if not pending.sent:  # still queued: nothing of it went out, take it back
                self._unsent = [entry for entry in self._unsent if entry[1] is not pending]
                if pending in self._queue:
                    self._queue.remove(pending)
            else:
                pending.abandoned = True  # the next reader drops what is still due
            if not self._reading:
                self._pass_turn()
            raise
        return pending.replies

    async def _write_unsent(self, mine: _Pending) -> None:
        """Be the writer: write the queued commands, a batch per write, until none are left.

        The first batch holds only the writer's own commands: cancelled midway,
        it breaks the connection, as a lone caller's write always did. A later
        batch carries other callers' commands: it is shielded from the
        writer's cancellation and bounded by the write timeout instead.
        """
        self._writing = True
        try:
            if len(self._queue) > 1:
                # Others are waiting for replies: let the callers ready to run
                # queue their commands first, so that they go out in one write
                # (the byte streams write at once, without yielding). Shielded:
                # the others' commands are queued behind this writer.
                await anyio.lowlevel.cancel_shielded_checkpoint()
            while self._unsent and self.error is None:
                batch, self._unsent = self._unsent, []
                for _, pending in batch:
                    pending.sent = True
                if len(batch) == 1 and batch[0][1] is mine:
                    await self._write_own(batch[0][0])
                    continue
                with anyio.CancelScope(shield=True):
                    with anyio.move_on_after(self._write_timeout):
                        await self.send(b"".join([data for data, _ in batch]))
                        continue
                    await self._break(
                        StoreConnectionLost(
                            f"a write to Redis did not finish within {self._write_timeout:g}s",
                            url=self.params.url,
                        )
                    )
        finally:
            self._writing = False

    async def _write_own(self, data: bytes) -> None:
        written = False
        try:
            await self.send(data)
            written = True
        finally:
            if not written and self.error is None:  # cancelled mid-write: unknown bytes sent
                await self._break(
                    StoreConnectionLost("a write to Redis was cancelled", url=self.params.url)
                )

    async def _read_until(self, mine: _Pending) -> None:
        queue = self._queue
        while mine.remaining:
            reply = await self.read_reply()
            if self.error is not None:  # failed by a cancelled write while we read
                raise self.error
            head = queue[0]
            head.replies.append(reply)
            head.remaining -= 1
            if not head.remaining:
                queue.popleft()
                if head is not mine and head.turn is not None:
                    head.turn.set()

    def _pass_turn(self) -> None:
        for pending in self._queue:
            if not pending.abandoned and pending.turn is not None:
                pending.turn.set()
                return

    async def _break(self, error: StoreConnectionLost) -> None:
        """Fail every caller and close the stream now: after a partial write or
        bytes that are not RESP, nothing more may be sent or read on it."""
        self.fail(error)
        with anyio.CancelScope(shield=True):
            await anyio.aclose_forcefully(self.stream)

    def closed_by_peer(self) -> bool:
        """True when the server closed (or wrote unasked to) this idle connection."""
        if self.parser.buffered:
            return True
        if self._peer_closed is not None:
            return self._peer_closed()
        if self._idle_poll is None:
            return False
        if self._raw.fileno() < 0:
            # Closed under us (asyncio closes the socket on EOF): its number may
            # already belong to another descriptor, so it is not polled.
            return True
        return bool(self._idle_poll.poll(0))  # readable while idle: EOF, reset or unasked bytes

    async def aclose(self) -> None:
        self.fail(StoreConnectionLost("the connection was closed", url=self.params.url))
        await anyio.aclose_forcefully(self.stream)
