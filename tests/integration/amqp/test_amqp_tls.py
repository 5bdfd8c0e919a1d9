"""``amqps://`` against a real RabbitMQ TLS listener (asyncio + trio).

A module fixture generates a throwaway CA and a ``localhost``/127.0.0.1 server
certificate with the ``openssl`` CLI, plus an unrelated second CA, and starts a
private RabbitMQ node with a TLS listener (``Services.start(tls=...)``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import anyio
import anyio.lowlevel
import pytest
from services import Services

from _tls import make_pki  # tests/ is on sys.path (rootdir conftest)
from relayna.errors import BrokerConnectionError, ConfigurationError
from relayna.transport import open_broker
from relayna.transport._broker import Delivery, QueueSpec

pytestmark = [pytest.mark.anyio, pytest.mark.rabbitmq]


class TLSNode:
    def __init__(self, services: Services, ca: Path, other_ca: Path) -> None:
        self.services = services
        self.ca = ca
        self.other_ca = other_ca

    def url(self, query: str = "") -> str:
        return self.services.amqps_url + (f"?{query}" if query else "")


@pytest.fixture(scope="module")
def tls_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSNode]:
    d = tmp_path_factory.mktemp("tls")
    pki = make_pki(d)
    svc = Services.start(str(d / "services"), tls=(str(pki.cert), str(pki.key), str(pki.ca)))
    try:
        yield TLSNode(svc, pki.ca, pki.other_ca)
    finally:
        svc.stop()


async def test_amqps_round_trip(tls_node: TLSNode, unique: str) -> None:
    url = tls_node.url(f"cafile={quote(str(tls_node.ca))}")
    q = f"t.tls.{unique}"
    with anyio.fail_after(20):
        async with open_broker(url) as broker:
            assert broker.url.startswith("amqps://guest:***@localhost:")
            await broker.declare_queue(QueueSpec(q, durable=False, auto_delete=False))
            try:
                await broker.publish("", q, b"over tls")  # waits for the confirm
                async with broker.consume(q, prefetch=1) as consumer:
                    delivery: Delivery = await consumer.__aiter__().__anext__()
                    assert delivery.body == b"over tls"
                    await delivery.ack()
                assert (await broker.inspect_queue(q)).message_count == 0
            finally:
                await broker.delete_queue(q)


async def test_amqps_wrong_ca_fails_typed_and_bounded(tls_node: TLSNode) -> None:
    url = tls_node.url(f"cafile={quote(str(tls_node.other_ca))}")
    before = len(anyio.get_running_tasks())
    with anyio.fail_after(10), pytest.raises(BrokerConnectionError) as info:
        async with open_broker(url):
            pytest.fail("connected although the server certificate is from another CA")
    message = str(info.value)
    assert info.value.url is not None
    assert info.value.url.startswith("amqps://guest:***@localhost:")
    assert info.value.url in message
    assert ":guest@" not in message  # password redacted
    assert "CERTIFICATE_VERIFY_FAILED" in message or "certificate" in message.lower()
    await anyio.lowlevel.checkpoint()
    assert len(anyio.get_running_tasks()) == before


async def test_amqps_verify_false_accepts_unknown_ca(tls_node: TLSNode, unique: str) -> None:
    url = tls_node.url(f"cafile={quote(str(tls_node.other_ca))}&verify=false")
    q = f"t.tls.noverify.{unique}"
    with anyio.fail_after(20):
        async with open_broker(url) as broker:
            await broker.declare_queue(QueueSpec(q, durable=False))
            try:
                await broker.publish("", q, b"unverified")
                assert (await broker.inspect_queue(q)).message_count == 1
            finally:
                await broker.delete_queue(q)


async def test_amqps_unreadable_cafile_is_a_configuration_error(tmp_path: Path) -> None:
    not_a_cert = tmp_path / "empty.pem"
    not_a_cert.write_text("")
    for cafile in (tmp_path / "missing.pem", not_a_cert):
        url = f"amqps://guest:s3cret@localhost:1/?cafile={quote(str(cafile))}"
        with anyio.fail_after(5), pytest.raises(ConfigurationError) as info:
            async with open_broker(url):
                pass
        assert "s3cret" not in str(info.value)
        assert "amqps://guest:***@localhost:1/" in str(info.value)
