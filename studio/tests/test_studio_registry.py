"""The registry on the memory store and the real Redis, both backends: atomic uniqueness."""

from __future__ import annotations

import uuid
from typing import Any

import anyio
import pytest

from relayna.transport import open_store
from relayna_studio import Registry, RegistryConflict, ServiceNotFound, parse_create

pytestmark = pytest.mark.anyio


def record(
    service_id: str, url: str = "http://a.example.test", env: str = "prod"
) -> dict[str, Any]:
    return parse_create(
        {
            "service_id": service_id,
            "name": service_id,
            "base_url": url,
            "environment": env,
            "auth_mode": "internal_network",
        }
    )


async def test_ten_concurrent_creates_of_one_id_make_one(store_url: str) -> None:
    async with open_store(store_url) as store:
        registry = Registry(store, f"t:{uuid.uuid4().hex}")
        outcomes: list[str] = []

        async def create(i: int) -> None:
            try:
                await registry.create(record("svc", f"http://s{i}.example.test"))
                outcomes.append("created")
            except RegistryConflict as exc:
                outcomes.append(exc.field)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for i in range(10):
                    tg.start_soon(create, i)
        assert sorted(outcomes) == ["created"] + ["service_id"] * 9
        assert await registry.ids() == ["svc"]
        # exactly one env+url key exists: the winner's
        winner = await registry.require("svc")
        assert await store.get(registry.env_url_key(winner)) == b"svc"


async def test_ten_concurrent_creates_of_one_url_make_one(store_url: str) -> None:
    async with open_store(store_url) as store:
        registry = Registry(store, f"t:{uuid.uuid4().hex}")
        results: list[str] = []

        async def create(i: int) -> None:
            try:
                await registry.create(record(f"svc-{i}"))
                results.append("created")
            except RegistryConflict as exc:
                results.append(exc.field)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for i in range(10):
                    tg.start_soon(create, i)
        assert sorted(results) == ["base_url"] * 9 + ["created"]
        assert len(await registry.ids()) == 1
        # same URL in another environment is a different service
        await registry.create(record("svc-other-env", env="staging"))


async def test_update_moves_the_url_index_and_concurrent_updates_keep_each_other(
    store_url: str,
) -> None:
    async with open_store(store_url) as store:
        registry = Registry(store, f"t:{uuid.uuid4().hex}")
        await registry.create(record("a", "http://a.example.test"))
        await registry.create(record("b", "http://b.example.test"))
        old, new = await registry.update("a", lambda r: {**r, "base_url": "http://a2.example.test"})
        assert await store.get(registry.env_url_key(old)) is None
        assert await store.get(registry.env_url_key(new)) == b"a"
        # the freed URL can be taken again
        await registry.create(record("c", "http://a.example.test"))
        with pytest.raises(RegistryConflict):
            await registry.update("a", lambda r: {**r, "base_url": "http://b.example.test"})

        async def tag(i: int) -> None:
            await registry.update("b", lambda r: {**r, "tags": [*r["tags"], f"t{i}"]})

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for i in range(10):
                    tg.start_soon(tag, i)
        tags = (await registry.require("b"))["tags"]
        assert sorted(tags) == sorted(f"t{i}" for i in range(10))


async def test_delete_frees_both_keys_and_a_stale_url_owner_does_not_block(store_url: str) -> None:
    async with open_store(store_url) as store:
        registry = Registry(store, f"t:{uuid.uuid4().hex}")
        r = await registry.create(record("a"))
        await registry.delete("a")
        assert await registry.ids() == []
        assert await store.get(registry.env_url_key(r)) is None
        with pytest.raises(ServiceNotFound):
            await registry.delete("a")
        with pytest.raises(ServiceNotFound):
            await registry.update("a", lambda x: x)
        # an env+url key left behind by the original's non-atomic create
        await store.set(registry.env_url_key(r), "ghost")
        await registry.create(record("b"))
        assert await store.get(registry.env_url_key(r)) == b"b"


async def test_unreadable_records_are_skipped(store_url: str) -> None:
    async with open_store(store_url) as store:
        registry = Registry(store, f"t:{uuid.uuid4().hex}")
        await registry.create(record("good"))
        await store.set(registry.id_key("bad"), b"{not json")
        await store.sadd(registry.all_key, "bad")
        assert [r["service_id"] for r in await registry.list()] == ["good"]
        assert registry.bad_records == 1


async def test_the_federation_cache_sees_own_writes_at_once_and_others_within_its_age(
    store_url: str,
) -> None:
    """Two replicas (two Registry objects on one store): a replica's own update or
    delete is seen by its next cached read; another replica's within ``max_age``
    (a deterministic check: a max_age of 0 always reads)."""
    async with open_store(store_url) as store:
        prefix = f"t:{uuid.uuid4().hex}"
        mine, other = Registry(store, prefix), Registry(store, prefix)
        with anyio.fail_after(10):
            assert await mine.cached("svc", 60.0) is None  # a miss is not cached
            await other.create(record("svc"))
            first = await mine.cached("svc", 60.0)
            assert first is not None
            assert first["status"] == "registered"
            first["status"] = "mutated by a caller"  # callers get a copy
            assert (await mine.cached("svc", 60.0) or {})["status"] == "registered"

            await other.update("svc", lambda r: {**r, "status": "disabled"})
            assert (await mine.cached("svc", 60.0) or {})["status"] == "registered"  # stale
            assert (await mine.cached("svc", None) or {})["status"] == "disabled"
            assert (await mine.cached("svc", 1e-9) or {})["status"] == "disabled"

            await mine.update("svc", lambda r: {**r, "name": "renamed"})
            assert (await mine.cached("svc", 60.0) or {})["name"] == "renamed"
            await mine.delete("svc")
            assert await mine.cached("svc", 60.0) is None
