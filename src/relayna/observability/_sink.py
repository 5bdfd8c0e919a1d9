"""The store sink: pumped observations go to the observation store (and the
service event feed) in batches, one round trip per batch."""

from __future__ import annotations

from collections.abc import Sequence

from relayna.errors import StoreError
from relayna.observability._feed import ServiceEventFeed
from relayna.observability._observation_store import ObservationStore
from relayna.observability._observations import Observation

__all__ = ["ObservationStoreSink", "make_observation_sink"]


class ObservationStoreSink:
    """A :class:`BatchObservationSink` writing to an :class:`ObservationStore`.

    Pass it as ``observation_sink=`` to a consumer: the consumer's bounded
    pump calls it off the hot path, so a slow or dead store never blocks a
    handler or an ack (a full buffer drops and counts). A failed write is
    counted in :attr:`failed` (and by the pump as a sink error), never raised
    into the runtime.
    """

    def __init__(self, store: ObservationStore, feed: ServiceEventFeed | None = None) -> None:
        self.store = store
        self.feed = feed
        self.written = 0
        self.duplicates = 0
        self.failed = 0

    async def __call__(self, event: Observation) -> None:
        await self.send_batch([event])

    async def send_batch(self, events: Sequence[Observation]) -> None:
        """Store ``events`` (and feed them) in one round trip: one script call each,
        pipelined, each observation encoded once."""
        try:
            results = await self.store.write_many(events, feed=self.feed)
        except StoreError:
            self.failed += len(events)
            raise
        for result in results:
            if isinstance(result, StoreError):
                self.failed += 1
            elif result:
                self.written += 1
            else:
                self.duplicates += 1


def make_observation_sink(
    store: ObservationStore, feed: ServiceEventFeed | None = None
) -> ObservationStoreSink:
    """The sink for ``observation_sink=`` (the original's ``make_redis_observation_sink``)."""
    return ObservationStoreSink(store, feed)
