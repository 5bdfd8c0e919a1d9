"""The observation pump never blocks the runtime: drops are counted."""

from __future__ import annotations

import anyio
import pytest

from relayna.observability import (
    MemoryObservationCollector,
    ObservationPump,
    TaskMessageAcked,
    observation_to_dict,
)

pytestmark = pytest.mark.anyio


def _event(i: int) -> TaskMessageAcked:
    return TaskMessageAcked(consumer_name="c", queue_name="q", task_id=f"t{i}")


async def test_pump_delivers_in_order_and_counts_drops() -> None:
    collector = MemoryObservationCollector()
    pump = ObservationPump(collector, buffer=3)
    for i in range(5):
        pump.emit(_event(i))
    assert (pump.emitted, pump.dropped) == (3, 2)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(pump.run)
            pump.close()
    assert [e.task_id for e in collector.events] == ["t0", "t1", "t2"]  # type: ignore[attr-defined]


async def test_failing_sink_is_counted_not_fatal() -> None:
    async def sink(event: object) -> None:
        raise RuntimeError("sink down")

    pump = ObservationPump(sink)
    pump.emit(_event(1))
    pump.close()
    with anyio.fail_after(5):
        await pump.run()
    assert pump.sink_errors == 1


def test_without_sink_emit_is_a_no_op_and_dict_form() -> None:
    pump = ObservationPump(None)
    pump.emit(_event(1))
    assert (pump.emitted, pump.dropped) == (0, 0)
    data = observation_to_dict(_event(2))
    assert data["event_type"] == "TaskMessageAcked"
    assert data["component"] == "task_consumer"
    assert isinstance(data["timestamp"], str)
