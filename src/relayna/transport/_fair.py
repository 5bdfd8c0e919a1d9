"""Fair hand-over of buffered deliveries, shared by the consumer adapters.

A consumer's deliveries wait in a bounded memory object stream (at most
``prefetch``). Taking each one with ``await receive()`` costs a task switch
per delivery; taking them with ``receive_nowait`` costs none but could keep
the consuming task from ever yielding. :class:`FairReceiver` does the
latter, checks cancellation *before* every take (never after: a delivery
taken is a delivery handed over), and yields every ``batch`` items or
whenever it has to wait.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import anyio
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream

__all__ = ["FAIR_BATCH", "FairReceiver"]

T = TypeVar("T")

#: Items taken from the buffer in a row before a schedule point anyway.
FAIR_BATCH = 128


class FairReceiver(Generic[T]):
    """``receive()`` as the stream's, without a task switch per buffered item.

    Raises what the stream's ``receive`` raises (``EndOfStream``,
    ``ClosedResourceError``).
    """

    __slots__ = ("_batch", "_receive", "_streak")

    def __init__(self, receive: MemoryObjectReceiveStream[T], batch: int = FAIR_BATCH) -> None:
        self._receive = receive
        self._batch = batch
        self._streak = 0

    async def receive(self) -> T:
        self._streak += 1
        if self._streak < self._batch:
            await anyio.lowlevel.checkpoint_if_cancelled()
            try:
                return self._receive.receive_nowait()
            except anyio.WouldBlock:
                pass
        self._streak = 0
        return await self._receive.receive()
