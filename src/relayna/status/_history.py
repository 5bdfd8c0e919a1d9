"""``StreamHistoryReader``: a bounded replay of the status *stream* (not Redis).

A short-lived consumer reads the status stream from an offset (``first``,
``last``, ``next``, a number or a timestamp) and collects the events of one
task (or of all tasks), stopping at the first of: ``max_scan`` messages
scanned, ``limit`` events collected, ``max_seconds`` elapsed, ``idle``
seconds without a message *after the first one*, or the task's terminal
status (with ``stop_on_terminal``). The result says which
(:attr:`HistoryReplay.stopped_by`): an empty replay stopped by ``idle`` never
happens, so "nothing found" is never "the broker was slow to start"; an empty
one stopped by ``max_seconds`` means the stream delivered nothing in time.
Every delivery is acked; bodies that do not decode are skipped and counted.

The consumer is pumped by a task into a bounded memory stream so that the
idle timeout cancels a memory-stream receive, never the consumer's iterator.
"""

from __future__ import annotations

import logging
import math
from collections import Counter

import anyio
import attrs
from anyio.streams.memory import MemoryObjectSendStream

from relayna.contracts import ContractAliasConfig, TerminalStatusSet
from relayna.errors import ContractError, unwrap_groups
from relayna.status._event import EventDict, decode_status_body
from relayna.transport import Broker, Consumer, Delivery, StreamOffset

__all__ = ["HistoryReplay", "StreamHistoryReader"]

log = logging.getLogger("relayna.status.history")


@attrs.frozen
class HistoryReplay:
    """The outcome of one replay: events oldest first, and why it stopped.

    ``stopped_by`` is one of ``terminal``, ``limit``, ``max_scan``, ``idle``
    (the stream went quiet after delivering), ``max_seconds`` or
    ``consumer_ended``.
    """

    events: list[EventDict]
    scanned: int
    skipped: int
    stopped_by: str


class StreamHistoryReader:
    """Replays status events from the status stream ``queue``."""

    def __init__(
        self,
        broker: Broker,
        queue: str,
        *,
        aliases: ContractAliasConfig | None = None,
        idle_timeout: float = 0.25,
        prefetch: int = 1000,
    ) -> None:
        self.broker = broker
        self.queue = queue
        self.aliases = aliases
        self.idle_timeout = idle_timeout
        self.prefetch = prefetch
        self.skipped: Counter[str] = Counter()

    async def replay(
        self,
        task_id: str | None,
        *,
        start_offset: StreamOffset = "first",
        terminal: TerminalStatusSet | None = None,
        stop_on_terminal: bool = True,
        max_seconds: float = 5.0,
        max_scan: int = 10_000,
        limit: int = 1000,
    ) -> HistoryReplay:
        """Collect events; see the module docstring for the stop conditions.

        Raises:
            BrokerError: the stream could not be consumed (e.g. not a stream).
        """
        terminal = terminal or TerminalStatusSet()
        events: list[EventDict] = []
        scanned = skipped = 0
        stopped_by = "max_seconds"
        idle = (
            min(self.idle_timeout, max_seconds) if math.isfinite(max_seconds) else self.idle_timeout
        )
        send, receive = anyio.create_memory_object_stream[Delivery](self.prefetch)
        with unwrap_groups(), anyio.move_on_after(max_seconds) as deadline:
            async with (
                self.broker.consume(
                    self.queue, prefetch=self.prefetch, offset=start_offset
                ) as consumer,
                anyio.create_task_group() as tg,
            ):
                tg.start_soon(_pump, consumer, send)
                with receive:
                    while True:
                        stopped_by = "idle"
                        # Idle means "the stream has nothing more": it only
                        # starts counting once the stream has delivered. The
                        # wait for the first delivery (a slow or busy broker)
                        # is bounded by max_seconds alone.
                        with anyio.move_on_after(idle if scanned else math.inf):
                            try:
                                delivery = await receive.receive()
                            except anyio.EndOfStream:
                                stopped_by = "consumer_ended"
                                break
                            stopped_by = ""
                        if stopped_by:
                            break
                        scanned += 1
                        event = self._decode(delivery.body)
                        await delivery.ack()
                        if event is None:
                            skipped += 1
                        elif task_id is None or event.get("task_id") == task_id:
                            events.append(event)
                            if (
                                stop_on_terminal
                                and task_id is not None
                                and terminal.is_terminal(event.get("status"))
                            ):
                                stopped_by = "terminal"
                                break
                            if len(events) >= limit:
                                stopped_by = "limit"
                                break
                        if scanned >= max_scan:
                            stopped_by = "max_scan"
                            break
                tg.cancel_scope.cancel()
        if deadline.cancelled_caught:
            stopped_by = "max_seconds"
        return HistoryReplay(events, scanned, skipped, stopped_by)

    def _decode(self, body: bytes) -> EventDict | None:
        try:
            return decode_status_body(body, aliases=self.aliases)
        except ContractError as exc:
            self.skipped[exc.reason] += 1
            log.debug("stream history: skipping a malformed status message: %s", exc)
            return None


async def _pump(consumer: Consumer, send: MemoryObjectSendStream[Delivery]) -> None:
    async with send:
        async for delivery in consumer:
            await send.send(delivery)
