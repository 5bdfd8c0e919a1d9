"""The public entry points of relayna.testing run whole suites on the memory adapters."""

from __future__ import annotations

import anyio
import pytest

from relayna.testing import check_broker, check_store
from relayna.transport import open_broker, open_store

pytestmark = pytest.mark.anyio


async def test_check_broker_passes_on_memory_broker(unique: str) -> None:
    with anyio.fail_after(60):
        async with open_broker("memory://") as broker:
            await check_broker(broker, prefix=f"pub-{unique}")


async def test_check_store_passes_on_memory_store(unique: str) -> None:
    with anyio.fail_after(30):
        async with open_store("memory://") as store:
            await check_store(store, prefix=f"pub-{unique}")
