"""Stream history replays wait for the first delivery (issue 26, class 4).

Under load ``/history?start_offset=first`` sometimes answered ``count=0``: the
0.25 s idle timeout also bounded the wait for the first message. Idleness now
counts only after a delivery, and the replay says why it stopped.
Memory broker, both backends.
"""

from __future__ import annotations

import anyio
import pytest

from relayna.contracts import StatusEvent, encode_status
from relayna.status import HistoryReplay, StreamHistoryReader
from relayna.topology import StatusTopologyBase
from relayna.transport import open_broker

pytestmark = pytest.mark.anyio


async def test_a_first_delivery_slower_than_the_idle_timeout_is_still_read(unique: str) -> None:
    topology = StatusTopologyBase(status_exchange=f"sx.{unique}", status_queue=f"sq.{unique}")
    event = encode_status(StatusEvent(task_id="t", status="completed", event_id="e1"))
    result: list[HistoryReplay] = []
    with anyio.fail_after(10):
        async with open_broker("memory://") as broker:
            await topology.plan().apply(broker)
            reader = StreamHistoryReader(broker, topology.status_queue, idle_timeout=0.01)

            async def replay() -> None:
                result.append(await reader.replay("t", start_offset="next", max_seconds=5))

            async with anyio.create_task_group() as tg:
                tg.start_soon(replay)
                # The slow broker: nothing for ten idle timeouts, then the event.
                await anyio.sleep(0.1)
                await broker.publish("", topology.status_queue, event)
    [replay] = result
    assert [e["event_id"] for e in replay.events] == ["e1"]
    assert replay.stopped_by == "terminal"


async def test_an_empty_stream_is_reported_as_such(unique: str) -> None:
    topology = StatusTopologyBase(status_exchange=f"sx.{unique}", status_queue=f"sq.{unique}")
    with anyio.fail_after(10):
        async with open_broker("memory://") as broker:
            await topology.plan().apply(broker)
            reader = StreamHistoryReader(broker, topology.status_queue, idle_timeout=0.01)
            replay = await reader.replay("t", max_seconds=0.2)
    assert (replay.events, replay.scanned, replay.stopped_by) == ([], 0, "max_seconds")
