"""Listing DLQ records on Redis is O(page), never O(all records) — counted, not timed.

Two stores on a private redis-server: one with 100 records, one with the same
100 newest records plus 9,900 older ones. Each listing below fills its first
and second page (and sees that more follow) from the newest records, so an
O(page) listing does the same work on both; its
cost is read from Redis itself, as the deltas of ``INFO commandstats`` (every
command, including those a script runs) and of ``INFO stats`` key lookups.
An implementation that read every record, or every index entry one by one,
would show 100 times more calls on the big store.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import anyio
import pytest
import redis
from services import free_port  # scripts/ is on sys.path (tests/conftest.py)

from _dlq_records import dlq_record  # tests/ is on sys.path (rootdir conftest)
from _redis_server import redis_server
from relayna.dlq import Cursor, DLQQuery, DLQStore, DLQStoreConfig
from relayna.transport import open_store

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def private_redis() -> Iterator[str]:
    """A redis-server of its own: nothing else's commands land in its stats."""
    port = free_port()
    with redis_server(port=port):
        yield f"redis://127.0.0.1:{port}/0"


def record(n: int, *, age: float) -> Any:
    """Records alternate between two queues; every fifth one timed out."""
    return dlq_record(
        n,
        age=age,
        now=NOW,
        queue_name="orders.dlq" if n % 2 == 0 else "billing.dlq",
        reason="timeout" if n % 5 == 0 else "handler_error",
    )


def counters(url: str) -> dict[str, int]:
    """Calls per command and key lookups so far (the INFO calls themselves left out)."""
    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats")
        keyspace = client.info("stats")
    finally:
        client.close()
    mine = ("cmdstat_info", "cmdstat_hello", "cmdstat_client|setinfo")  # this INFO client's own
    out = {name: int(v["calls"]) for name, v in stats.items() if name not in mine}
    out["keyspace_lookups"] = int(keyspace["keyspace_hits"]) + int(keyspace["keyspace_misses"])
    return out


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


#: name, filters, page size
LISTINGS: list[tuple[str, DLQQuery, int]] = [
    ("newest page", DLQQuery(), 30),
    ("one queue", DLQQuery(queue_name="orders.dlq"), 20),
    ("queue and reason", DLQQuery(queue_name="orders.dlq", reason="timeout"), 4),
    ("state", DLQQuery(state="dead_lettered"), 30),
    ("one task", DLQQuery(task_id="t7"), 50),
]


async def test_listing_costs_the_same_at_100_and_10000_records(
    private_redis: str,
) -> None:
    url = private_redis
    with anyio.fail_after(120):
        async with open_store(url) as store:
            small = DLQStore(store, DLQStoreConfig(prefix="cost-small"))
            big = DLQStore(store, DLQStoreConfig(prefix="cost-big"))
            if not (await big.list_records(limit=1)).records:  # filled once per module
                newest = [record(n, age=n) for n in range(100)]
                older = [record(n, age=1000 + n) for n in range(100, 10_000)]
                for target, records in ((small, newest), (big, newest + older)):
                    for i in range(0, len(records), 1000):
                        assert all(await target.add_many(records[i : i + 1000]))
            for target in (small, big):
                await target.list_records(limit=1)  # the script is loaded: no NOSCRIPT below

            costs: dict[str, list[dict[str, int]]] = {}
            for name, query, limit in LISTINGS:
                for target in (small, big):
                    before = counters(url)
                    page = await target.list_records(query, limit=limit)
                    costs.setdefault(name, []).append(delta(before, counters(url)))
                    assert page.records, name
                    # the second page, from the first page's cursor
                    if page.next_cursor is not None:
                        before = counters(url)
                        cursor = Cursor.parse(page.next_cursor)
                        await target.list_records(query, cursor=cursor, limit=limit)
                        costs.setdefault(name + ", page 2", []).append(delta(before, counters(url)))
            limits = {name: limit for name, _, limit in LISTINGS}
            for name, (on_small, on_big) in costs.items():
                assert on_small == on_big, (name, on_small, on_big)
                calls = sum(v for k, v in on_big.items() if k.startswith("cmdstat_"))
                # a few calls per record on the page (scan, filter, fields), not per record stored
                assert calls <= 6 * (limits[name.removesuffix(", page 2")] + 1) + 10, (name, on_big)
            assert set(costs) >= {"newest page", "newest page, page 2", "queue and reason"}
