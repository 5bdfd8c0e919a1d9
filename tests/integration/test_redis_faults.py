"""Store adapters against real Redis faults, and bad connection input.

Server control (CLIENT KILL, SCRIPT FLUSH, a password-protected throwaway
redis-server, a fake server that closes connections) lives here, not in the
public conformance suite.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager

import anyio
import pytest
from services import free_port  # scripts/ is on sys.path (tests/conftest.py)

from _redis_server import admin, redis_server  # tests/ is on sys.path (rootdir conftest)
from _transports import REDIS_ADAPTERS
from relayna.errors import (
    ConfigurationError,
    StoreAuthenticationError,
    StoreConnectionError,
)
from relayna.status import WRITE_STATUS_SCRIPT
from relayna.transport import PubSubMessage, PubSubReconnected, Store, open_store

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


@pytest.fixture(params=REDIS_ADAPTERS)
def combo(request: pytest.FixtureRequest) -> tuple[str, str]:
    adapter, backend = request.param
    return str(adapter), str(backend)


@pytest.fixture
def anyio_backend(combo: tuple[str, str]) -> str:
    return combo[1]


def _open(url: str, adapter: str) -> AbstractAsyncContextManager[Store]:
    return open_store(url, adapter=adapter)  # type: ignore[arg-type]


@pytest.fixture
def private_url(password_redis: int) -> str:
    """Server-control tests run on a private redis-server, never on the shared one."""
    return f"redis://:s3cret@127.0.0.1:{password_redis}/0"


@pytest.fixture
async def store(combo: tuple[str, str], private_url: str) -> AsyncIterator[Store]:
    async with _open(private_url, combo[0]) as s:
        yield s


async def test_reads_survive_client_kill(store: Store, private_url: str, unique: str) -> None:
    key = f"relayna-test:{unique}:k"
    with anyio.fail_after(10):
        await store.set(key, "v")
        # The server closed the store's connection before it answered the kill.
        killed = await admin(private_url, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        assert killed >= 1
        assert await store.get(key) == b"v"  # reads reconnect (one transparent retry)
        assert await store.set(key, "w") is True  # and writes work on the new connection
        await store.delete(key)


async def test_pubsub_reconnects_after_kill(store: Store, private_url: str, unique: str) -> None:
    channel = f"relayna-test:{unique}:ch"
    with anyio.fail_after(15):
        async with store.subscribe(channel) as sub, store.subscribe(channel) as other:
            await store.publish(channel, "before")
            await admin(private_url, "CLIENT", "KILL", "TYPE", "pubsub")
            for s in (sub, other):
                events = []
                async for event in s:
                    events.append(event)
                    if isinstance(event, PubSubReconnected):
                        break
                assert events == [PubSubMessage(channel, b"before"), PubSubReconnected()]
            await store.publish(channel, "after")
            async for event in sub:
                assert event == PubSubMessage(channel, b"after")
                break


async def test_noscript_recovery(store: Store, private_url: str, unique: str) -> None:
    keys = [f"relayna-test:{unique}:{n}" for n in ("d1", "h", "c")]
    args = ["e1", 5000, 10, f"relayna-test:{unique}:ch", "c1"]
    with anyio.fail_after(10):
        assert await store.run_script(WRITE_STATUS_SCRIPT, keys, args) == 1
        await admin(private_url, "SCRIPT", "FLUSH")
        keys[0] = f"relayna-test:{unique}:d2"
        assert await store.run_script(WRITE_STATUS_SCRIPT, keys, args) == 1
        assert await store.llen(keys[1]) == 2
        await store.delete(*keys, f"relayna-test:{unique}:d1")


async def test_status_store_prepare_loads_the_write_script(store: Store, private_url: str) -> None:
    """The hub preloads the script: its first write is not answered NOSCRIPT."""
    from relayna.status import WRITE_STATUS_SCRIPT, StatusStore
    from relayna.transport._store_util import script_sha

    sha = script_sha(WRITE_STATUS_SCRIPT)
    with anyio.fail_after(10):
        await admin(private_url, "SCRIPT", "FLUSH")
        assert await admin(private_url, "SCRIPT", "EXISTS", sha) == [0]
        await StatusStore(store).prepare()
        assert await admin(private_url, "SCRIPT", "EXISTS", sha) == [1]


# -- bad input -------------------------------------------------------------------


@pytest.fixture(scope="module")
def password_redis() -> Iterator[int]:
    """A throwaway redis-server with requirepass (the shared one is not touched)."""
    port = free_port()
    with redis_server("--requirepass", "s3cret", port=port):
        yield port


@pytest.mark.parametrize("url", ["redis://[::1", "redis://host:notaport/0", ""])
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_unparseable_url(url: str) -> None:
    with pytest.raises(ConfigurationError):
        async with open_store(url):
            pass


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_unknown_scheme() -> None:
    with pytest.raises(ConfigurationError, match=r"ftp://u:\*\*\*@h"):
        async with open_store("ftp://u:secret@h/0"):
            pass


async def test_wrong_password(combo: tuple[str, str], password_redis: int) -> None:
    url = f"redis://:wrong@127.0.0.1:{password_redis}/0"
    with anyio.fail_after(10), pytest.raises(StoreAuthenticationError) as info:
        async with _open(url, combo[0]):
            pass
    assert "wrong" not in str(info.value)
    assert info.value.url == f"redis://:***@127.0.0.1:{password_redis}/0"
    async with _open(f"redis://:s3cret@127.0.0.1:{password_redis}/0", combo[0]) as s:
        await s.ping()


async def test_connection_refused(combo: tuple[str, str]) -> None:
    url = f"redis://:pw@127.0.0.1:{free_port()}/0"
    with anyio.fail_after(10), pytest.raises(StoreConnectionError) as info:
        async with _open(url, combo[0]):
            pass
    assert ":***@" in str(info.value)
    assert "pw@" not in str(info.value)


async def test_server_closes_mid_command(combo: tuple[str, str]) -> None:
    async def close_at_once(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, close_at_once)
        with anyio.fail_after(15), pytest.raises(StoreConnectionError) as info:
            async with _open(f"redis://:pw@127.0.0.1:{port}/0", combo[0]):
                pass
        assert ":***@" in str(info.value)
        tg.cancel_scope.cancel()
