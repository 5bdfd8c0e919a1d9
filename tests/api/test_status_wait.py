"""``/events/{id}?wait=SECONDS``: a task nobody published answers 404 once the wait is over.

Without ``wait`` nothing changes (the stream waits: the task may be queued);
with it, the first status ends the wait and the stream goes on as usual.
Real HTTP (hypercorn on loopback + httpx), both backends.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from test_status_api import Serve, app_server, ev, sse_events, status_ids

pytestmark = pytest.mark.anyio


async def test_unknown_task_is_404_after_the_wait(serve: Serve, unique: str) -> None:
    with anyio.fail_after(10):
        async with app_server(serve, unique) as (_runtime, client):
            started = anyio.current_time()
            response = await client.get("/events/nobody?wait=0.3")
            assert anyio.current_time() - started >= 0.3
            assert response.status_code == 404
            assert response.json() == {
                "detail": "No status found for task_id 'nobody' after waiting 0.3 s: nothing "
                "was published for it (unknown id, or no worker has picked it up yet)"
            }
            snapshot = await client.get(
                "/events/nobody?wait=0", headers={"Accept": "application/json"}
            )
            assert snapshot.status_code == 404
            assert "after waiting 0 s" in snapshot.json()["detail"]


async def test_a_status_within_the_wait_starts_the_stream(serve: Serve, unique: str) -> None:
    with anyio.fail_after(10):
        async with app_server(serve, unique) as (runtime, client):
            result: dict[str, Any] = {}

            async def read() -> None:
                result["r"] = await sse_events(client, "/events/late?wait=30")

            async with anyio.create_task_group() as tg:
                tg.start_soon(read)
                while runtime.stream_stats.opened == 0:  # noqa: ASYNC110 - the request arrived
                    await anyio.sleep(0.01)
                await runtime.status.write(ev(1, "late"))
                await runtime.status.write(ev(2, "late", status="completed"))
            code, events, _ = result["r"]
            assert code == 200
            assert events[0]["event"] == "ready"
            assert status_ids(events) == ["late-1", "late-2"]


async def test_a_known_task_streams_at_once_and_no_wait_keeps_waiting(
    serve: Serve, unique: str
) -> None:
    with anyio.fail_after(10):
        async with app_server(serve, unique) as (runtime, client):
            await runtime.status.write(ev(1, "known", status="completed"))
            code, events, _ = await sse_events(client, "/events/known?wait=300")
            assert (code, status_ids(events)) == (200, ["known-1"])
            snapshot = await client.get(
                "/events/known?wait=300", headers={"Accept": "application/json"}
            )
            assert snapshot.json()["count"] == 1
            # the default is unchanged: an unknown task's stream opens and waits
            code, events, _ = await sse_events(
                client, "/events/queued", until=lambda evs: bool(evs)
            )
            assert code == 200
            assert events[0]["event"] == "ready"


@pytest.mark.parametrize("wait", ["abc", "-1", "nan", "inf", "-inf", "", "1e400", "0x10"])
async def test_bad_wait_values_are_422(serve: Serve, unique: str, wait: str) -> None:
    with anyio.fail_after(10):
        async with app_server(serve, unique) as (_runtime, client):
            response = await client.get("/events/t1", params={"wait": wait})
            assert response.status_code == 422
            assert response.json()["detail"][0]["loc"] == ["query", "wait"]


async def test_a_huge_wait_is_clamped_to_max_wait(serve: Serve, unique: str) -> None:
    with anyio.fail_after(10):
        async with app_server(serve, unique, max_wait=0.2) as (_runtime, client):
            response = await client.get("/events/nobody?wait=1e9")
            assert response.status_code == 404
            assert "after waiting 0.2 s" in response.json()["detail"]
