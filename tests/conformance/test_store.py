"""STORE_CHECKS over adapters x backends: memory (asyncio, trio), the native
client and coredis on the real Redis (asyncio, trio), redis-py (asyncio only),
and the native client on the 6-node Redis Cluster (asyncio, trio; slow tier:
it starts six servers). On the cluster the checks' key prefix carries a hash
tag, so the checks that use several keys in one call keep them in one slot."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager

import anyio
import pytest

from relayna.errors import UnsupportedBackendError
from relayna.testing._store_conformance import STORE_CHECKS, StoreCheck
from relayna.transport import open_memory_store, open_redispy_store, open_store
from relayna.transport._store import Store

pytestmark = pytest.mark.anyio

COMBOS = [
    pytest.param(("memory", "asyncio"), id="memory-asyncio"),
    pytest.param(("memory", "trio"), id="memory-trio"),
    pytest.param(("native", "asyncio"), id="native-asyncio", marks=pytest.mark.redis),
    pytest.param(("native", "trio"), id="native-trio", marks=pytest.mark.redis),
    pytest.param(("coredis", "asyncio"), id="coredis-asyncio", marks=pytest.mark.redis),
    pytest.param(("coredis", "trio"), id="coredis-trio", marks=pytest.mark.redis),
    pytest.param(("redis-py", "asyncio"), id="redispy-asyncio", marks=pytest.mark.redis),
    pytest.param(("cluster", "asyncio"), id="cluster-asyncio", marks=pytest.mark.slow_tier),
    pytest.param(("cluster", "trio"), id="cluster-trio", marks=pytest.mark.slow_tier),
]


@pytest.fixture(params=COMBOS)
def combo(request: pytest.FixtureRequest) -> tuple[str, str]:
    adapter, backend = request.param
    return str(adapter), str(backend)


@pytest.fixture
def anyio_backend(combo: tuple[str, str]) -> str:
    return combo[1]


@pytest.fixture
async def store(combo: tuple[str, str], request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    adapter = combo[0]
    opener: AbstractAsyncContextManager[Store]
    if adapter == "memory":
        opener = open_memory_store("memory://")
    elif adapter == "cluster":
        opener = open_store(request.getfixturevalue("redis_cluster_url"))
    else:
        url = request.getfixturevalue("redis_url")
        opener = open_store(url, adapter=adapter)  # type: ignore[arg-type]
    async with opener as s:
        yield s


@pytest.mark.parametrize("check", STORE_CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
async def test_store_conformance(
    store: Store, combo: tuple[str, str], check: StoreCheck, unique: str
) -> None:
    tag = f"{{{unique}}}" if combo[0] == "cluster" else unique
    with anyio.fail_after(20):
        await check(store, f"relayna-test:{tag}:")


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_redispy_rejects_trio(redis_url: str) -> None:
    with pytest.raises(UnsupportedBackendError):
        async with open_redispy_store(redis_url):
            pass
