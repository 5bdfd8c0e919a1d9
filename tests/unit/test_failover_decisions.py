"""The failing-over broker's pure decisions and its configuration checks
(no server: the real-node behaviour is tests/integration/amqp/test_failover_broker.py)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

import anyio
import pytest

from relayna.api import RuntimeConfig
from relayna.api._lifespan import _hub_reconnect
from relayna.errors import (
    BrokerConnectionError,
    BrokerUnavailable,
    ConfigurationError,
    ConnectionLost,
    PublishOutcomeUnknown,
)
from relayna.transport import (
    Broker,
    FailoverBroker,
    after_connection_lost,
    broker_opener,
    open_failover_broker,
)


def test_only_idempotent_operations_run_again_after_a_loss() -> None:
    assert after_connection_lost("idempotent") == "again"
    assert after_connection_lost("publish") == "unknown"
    assert after_connection_lost("counted") == "raise"


def test_the_new_errors_are_caught_where_their_parents_are() -> None:
    # Code that handles a lost connection or a failed connect keeps working.
    assert issubclass(PublishOutcomeUnknown, ConnectionLost)
    assert issubclass(BrokerUnavailable, BrokerConnectionError)
    assert not issubclass(BrokerUnavailable, ConnectionLost)


def test_no_opener_for_the_memory_broker_or_without_a_url() -> None:
    assert broker_opener(None) is None
    assert broker_opener("memory://") is None
    assert broker_opener("amqp://guest:guest@h1:5672,h2:5673/") is not None


def _never() -> AbstractAsyncContextManager[Broker]:
    raise AssertionError("not opened in this test")


def test_the_hub_retries_on_a_failing_over_broker_instead_of_opening_its_own() -> None:
    url = "amqp://guest:guest@h1:5672,h2:5673/"
    config = RuntimeConfig(store_url="memory://", broker_url=url)
    assert _hub_reconnect(config, FailoverBroker(_never, url)) is None
    # a broker object passed in that does not fail over: the hub opens from the URL
    other: Broker = type("Other", (), {"url": url})()  # type: ignore[assignment]
    assert _hub_reconnect(config, other) is not None
    memory = RuntimeConfig(store_url="memory://", broker_url="memory://")
    assert _hub_reconnect(memory, other) is None


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan")])
def test_the_unavailable_bound_must_be_positive(timeout: float) -> None:
    with pytest.raises(ConfigurationError):
        FailoverBroker(_never, "amqp://h/", unavailable_timeout=timeout)


@pytest.mark.anyio
async def test_a_first_connection_that_fails_fails_the_startup(anyio_backend: str) -> None:
    url = "amqp://guest:guest@127.0.0.1:1/?connection_timeout=1"  # nothing listens there
    with anyio.fail_after(10), pytest.raises(BrokerConnectionError, match=r"127\.0\.0\.1:1"):
        async with open_failover_broker(url):
            raise AssertionError("opened")
