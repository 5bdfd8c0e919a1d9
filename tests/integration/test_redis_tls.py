"""``rediss://`` against a real redis-server TLS listener (native and coredis adapters).

A module fixture generates a throwaway CA and a ``localhost``/127.0.0.1 server
certificate with the ``openssl`` CLI (``tests/_tls.py``), plus an unrelated
second CA, and starts a private redis-server that listens on TLS only
(``--port 0 --tls-port N``, no client certificates, ``requirepass``). The
shared Redis is not touched. Both anyio backends come from the
``anyio_backend`` fixture of ``tests/conftest.py``.

What users rely on: commands, pipelines (``StatusStore.write_many``) and
pubsub work over TLS; the native store keeps its one healthy TLS command
connection (the idle check must not mistake TLS bytes for a server close);
an unknown CA or a host the certificate does not name fails at open with a
typed, password-redacted error, and ``ssl_cert_reqs=none`` accepts an
unknown CA; plaintext against the TLS port fails within the connect timeout
instead of hanging; an unreadable ``ssl_ca_certs`` is a configuration error.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import anyio
import attrs
import pytest
from services import free_port  # scripts/ is on sys.path (tests/conftest.py)

from _redis_server import redis_server  # tests/ is on sys.path (rootdir conftest)
from _tls import make_pki
from relayna.errors import ConfigurationError, StoreConnectionError
from relayna.status import StatusStore, StatusStoreConfig
from relayna.status._event import dumps_event
from relayna.transport import PubSubMessage, Store, Subscription, open_store
from relayna.transport.resp import NativeRespStore

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

PASSWORD = "s3cret"
Adapter = Literal["native", "coredis"]


@attrs.frozen
class TLSRedis:
    port: int
    ca: Path
    other_ca: Path

    def url(self, query: str = "", *, scheme: str = "rediss", host: str = "localhost") -> str:
        base = f"{scheme}://:{PASSWORD}@{host}:{self.port}/0"
        return f"{base}?{query}" if query else base

    def ca_query(self, ca: Path | None = None) -> str:
        return f"ssl_ca_certs={quote(str(ca or self.ca))}"


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSRedis]:
    d = tmp_path_factory.mktemp("redis-tls")
    pki = make_pki(d)
    port = free_port()
    with redis_server(
        "--tls-cert-file", str(pki.cert),
        "--tls-key-file", str(pki.key),
        "--tls-ca-cert-file", str(pki.ca),
        "--tls-auth-clients", "no",
        "--requirepass", PASSWORD,
        port=None,  # TLS only: no plaintext listener
        tls_port=port,
        bind=("127.0.0.1", "127.0.0.2"),  # .2 is not named in the certificate
        directory=d,
        logfile=d / "redis.log",
    ):  # fmt: skip
        yield TLSRedis(port=port, ca=pki.ca, other_ca=pki.other_ca)


# -- helpers -----------------------------------------------------------------------


def native(store: Store) -> NativeRespStore:
    assert isinstance(store, NativeRespStore)
    return store


async def receive(sub: Subscription, count: int) -> list[object]:
    got: list[object] = []
    async for event in sub:
        got.append(event)
        if len(got) == count:
            break
    return got


async def exercise(store: Store, unique: str) -> None:
    """Commands, a pipelined script batch and a pubsub round trip."""
    key = f"t:tls:{unique}"
    assert await store.set(key, b"over tls", ttl=60)
    assert await store.get(key) == b"over tls"
    assert await store.delete(key) == 1

    status = StatusStore(store, StatusStoreConfig(prefix=f"t-tls-{unique}", ttl_seconds=60))
    task_id = f"task-{unique}"
    events = [
        {"task_id": task_id, "event_id": f"e{n}", "status": "running", "n": n} for n in range(3)
    ]
    channel = f"t:tls:chan:{unique}"
    async with store.subscribe(status.channel(task_id), channel) as sub:
        # One pipeline of three EVALSHA (the first test on the fresh server also
        # gets NOSCRIPT, SCRIPT LOAD, and the pipeline again); each stored
        # event is also published on the task's channel.
        assert await status.write_many(events) == [True, True, True]
        published = await receive(sub, 3)
        assert published == [PubSubMessage(status.channel(task_id), dumps_event(e)) for e in events]
        assert await status.write_many(events) == [False, False, False]  # deduplicated
        assert await store.publish(channel, b"ping over tls") == 1
        assert await receive(sub, 1) == [PubSubMessage(channel, b"ping over tls")]
    assert [e["n"] for e in await status.history(task_id)] == [2, 1, 0]


def verified(adapter: Adapter, ca: Path) -> str:
    """The query that makes ``adapter`` verify the certificate against ``ca``.

    The native client always checks the hostname when it verifies; coredis
    needs ``ssl_check_hostname=true`` for that (its default is off).
    """
    query = f"ssl_ca_certs={quote(str(ca))}"
    if adapter == "coredis":
        query += "&ssl_cert_reqs=required&ssl_check_hostname=true"
    return query


async def connections_received(store: NativeRespStore) -> int:
    info = bytes(await store._call("read", b"INFO", b"stats")).decode()
    for line in info.splitlines():
        if line.startswith("total_connections_received:"):
            return int(line.split(":", 1)[1])
    raise AssertionError(f"no total_connections_received in INFO stats: {info!r}")


def assert_redacted(error: StoreConnectionError | ConfigurationError, port: int) -> str:
    message = str(error)
    assert PASSWORD not in message
    assert f"rediss://:***@localhost:{port}/0" in message
    return message


# -- the happy path -------------------------------------------------------------------


@pytest.mark.parametrize("adapter", ["native", "coredis"])
async def test_rediss_commands_pipeline_and_pubsub(
    tls_redis: TLSRedis, adapter: Adapter, unique: str
) -> None:
    url = tls_redis.url(verified(adapter, tls_redis.ca))
    with anyio.fail_after(10):
        async with open_store(url, adapter=adapter) as store:
            assert store.url.startswith(f"rediss://:***@localhost:{tls_redis.port}/0?")
            await exercise(store, unique)


async def test_native_keeps_one_tls_connection(tls_redis: TLSRedis, unique: str) -> None:
    """Sequential commands with idle pauses between them, then concurrent ones,
    all run on the store's one TLS command connection: the idle check (a poll
    of the raw socket) does not mistake a healthy TLS connection for one the
    server closed, and the server sees no new connection."""
    key = f"t:tls:reuse:{unique}"
    with anyio.fail_after(10):
        async with open_store(tls_redis.url(tls_redis.ca_query()), adapter="native") as opened:
            store = native(opened)
            conn = store._connection.current  # opened by the PING at open
            assert conn is not None
            client_id = await store._call("read", b"CLIENT", b"ID")
            before = await connections_received(store)
            for n in range(10):
                await anyio.sleep(0.03)  # idle: anything the server sends late arrives now
                assert conn.idle
                assert not conn.closed_by_peer()
                assert await store.incr(key) == n + 1
                assert await store._call("read", b"CLIENT", b"ID") == client_id
                assert store._connection.current is conn
            async with anyio.create_task_group() as tg:
                for _ in range(20):
                    tg.start_soon(store.incr, key)
            assert await store.mget([key, key]) == [b"30", b"30"]
            assert await store.delete(key) == 1
            assert await store._call("read", b"CLIENT", b"ID") == client_id
            assert store._connection.current is conn
            assert await connections_received(store) == before  # no new connection


# -- verification failures --------------------------------------------------------------


@pytest.mark.parametrize("adapter", ["native", "coredis"])
async def test_rediss_unknown_ca_fails_typed_and_redacted(
    tls_redis: TLSRedis, adapter: Adapter
) -> None:
    url = tls_redis.url(verified(adapter, tls_redis.other_ca))
    with anyio.fail_after(10), pytest.raises(StoreConnectionError) as info:
        async with open_store(url, adapter=adapter):
            pytest.fail("connected although the server certificate is from another CA")
    message = assert_redacted(info.value, tls_redis.port)
    assert info.value.url is not None
    assert info.value.url.startswith(f"rediss://:***@localhost:{tls_redis.port}/0?")
    assert "CERTIFICATE_VERIFY_FAILED" in message  # the reason, with either adapter


@pytest.mark.parametrize("adapter", ["native", "coredis"])
async def test_rediss_cert_reqs_none_accepts_unknown_ca(
    tls_redis: TLSRedis, adapter: Adapter, unique: str
) -> None:
    url = tls_redis.url(f"{tls_redis.ca_query(tls_redis.other_ca)}&ssl_cert_reqs=none")
    key = f"t:tls:noverify:{unique}"
    with anyio.fail_after(10):
        async with open_store(url, adapter=adapter) as store:
            assert await store.set(key, b"unverified", ttl=60)
            assert await store.get(key) == b"unverified"
            assert await store.delete(key) == 1


@pytest.mark.parametrize("adapter", ["native", "coredis"])
async def test_rediss_checks_the_hostname(tls_redis: TLSRedis, adapter: Adapter) -> None:
    """The right CA but an address the certificate does not name (127.0.0.2)."""
    url = tls_redis.url(verified(adapter, tls_redis.ca), host="127.0.0.2")
    with anyio.fail_after(10), pytest.raises(StoreConnectionError) as info:
        async with open_store(url, adapter=adapter):
            pytest.fail("connected although the certificate does not name 127.0.0.2")
    message = str(info.value)
    assert PASSWORD not in message
    assert "127.0.0.2" in message
    assert "mismatch" in message


async def test_native_plaintext_against_the_tls_port_fails_within_connect_timeout(
    tls_redis: TLSRedis,
) -> None:
    url = tls_redis.url("connect_timeout=2", scheme="redis")
    started = anyio.current_time()
    with anyio.fail_after(10), pytest.raises(StoreConnectionError) as info:
        async with open_store(url, adapter="native"):
            pytest.fail("a plaintext client got answers from a TLS-only port")
    assert anyio.current_time() - started < 2.5
    assert PASSWORD not in str(info.value)
    assert f"redis://:***@localhost:{tls_redis.port}/0" in str(info.value)


@pytest.mark.parametrize("adapter", ["native", "coredis"])
async def test_unreadable_ca_file_is_a_configuration_error(
    tmp_path: Path, adapter: Adapter
) -> None:
    not_a_cert = tmp_path / "empty.pem"
    not_a_cert.write_text("")
    for cafile in (Path("/nonexistent.pem"), not_a_cert):
        # Port 1: the file is read before anything is connected.
        url = f"rediss://:{PASSWORD}@localhost:1/0?ssl_ca_certs={quote(str(cafile))}"
        with anyio.fail_after(5), pytest.raises(ConfigurationError) as info:
            async with open_store(url, adapter=adapter):
                pass
        assert_redacted(info.value, 1)
        assert str(cafile) in str(info.value)
