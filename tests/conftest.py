"""Shared fixtures: both async backends, the real services, unique names.

* ``anyio_backend`` runs every ``@pytest.mark.anyio`` test on asyncio and trio
  (``RELAYNA_TEST_BACKENDS=asyncio`` narrows it; nox uses that).
* ``services`` / ``amqp_url`` / ``redis_url``: one real RabbitMQ and one real
  Redis per test run. ``scripts/test`` (and so ``.ci/run``) starts them once
  and exports their URLs; running pytest directly starts them here. Failing to
  start them is an error, never a skip.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from rabbitmq_cluster import RabbitCluster, shared_cluster
from redis_cluster import RedisCluster
from services import Services

BACKENDS = [
    b.strip()
    for b in os.environ.get("RELAYNA_TEST_BACKENDS", "asyncio,trio").split(",")
    if b.strip()
]


@pytest.fixture(params=[pytest.param(b, id=b) for b in BACKENDS])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def unique() -> str:
    """A short unique token for queue/exchange names and key prefixes."""
    return uuid.uuid4().hex[:12]


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    directory = os.environ.get("RELAYNA_TEST_SERVICES_DIR")
    if directory:
        yield Services.load(directory)
        return
    svc = Services.start()
    os.environ.update(svc.env())
    try:
        yield svc
    finally:
        svc.stop()


#: The private node's consumer timeout (ms), checked every 100 ms (a channel tick).
PRIVATE_CONSUMER_TIMEOUT_MS = 2000


@pytest.fixture(scope="session")
def private_rabbit() -> Iterator[Services]:
    """A RabbitMQ node (and Redis) of its own, for faults that are node-wide: resource
    alarms, and a short ``consumer_timeout`` (2 s; the shared node keeps 30 min).

    Started on first use, stopped at the end of the session. A test that raises
    an alarm clears it before it ends (in a ``finally``).
    """
    svc = Services.start(
        rabbitmq_conf=f"consumer_timeout = {PRIVATE_CONSUMER_TIMEOUT_MS}",
        # not in rabbitmq.conf's schema: how often a channel checks the timeout
        rabbitmq_advanced="[{rabbit, [{channel_tick_interval, 100}]}].",
    )
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """A 6-node Redis Cluster (3 primaries, 3 replicas; ``scripts/redis_cluster.py``).

    Started on first use (``services.py start --redis-cluster`` exports
    ``RELAYNA_TEST_REDIS_CLUSTER_DIR`` to share one), stopped at the end of the
    session. A test that kills a node restarts it and waits for the cluster's
    replicas before it ends, so the next test finds all six nodes."""
    directory = os.environ.get("RELAYNA_TEST_REDIS_CLUSTER_DIR")
    if directory:
        yield RedisCluster.load(directory)
        return
    cluster = RedisCluster.start()
    os.environ.update(cluster.env())
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def rabbit_cluster() -> Iterator[RabbitCluster]:
    """A 3-node RabbitMQ cluster (scripts/rabbitmq_cluster.py), started on first
    use (about a minute on a busy 2-core box) and shared by the session; only
    slow-tier tests use it. ``services.py start --rabbitmq-cluster 3`` exports
    ``RELAYNA_TEST_RABBITMQ_CLUSTER_DIR`` to reuse one."""
    with shared_cluster(3) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_cluster_url(redis_cluster: RedisCluster) -> str:
    return redis_cluster.url


@pytest.fixture(scope="session")
def amqp_url(services: Services) -> str:
    return services.amqp_url


@pytest.fixture(scope="session")
def redis_url(services: Services) -> str:
    return services.redis_url


@pytest.fixture(params=["memory", "redis"])
def store_url(request: pytest.FixtureRequest) -> str:
    """Each store test runs on the memory store and on the real Redis."""
    if request.param == "memory":
        return "memory://"
    return str(request.getfixturevalue("redis_url"))


@pytest.fixture
def span_exporter() -> Iterator[Any]:
    """An OpenTelemetry SDK tracer provider with an in-memory exporter, installed
    globally for this test only (reset afterwards, as OpenTelemetry's own test
    utilities do), so tracing costs nothing in the tests that do not ask for it."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.util._once import Once

    def reset() -> None:
        trace._TRACER_PROVIDER_SET_ONCE = Once()
        trace._TRACER_PROVIDER = None

    reset()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    try:
        yield exporter
    finally:
        provider.shutdown()
        reset()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """In CI (CI=true) a skipped test is a failure: nothing is silently left out."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which is not allowed: {report.longrepr}"


#: marker -> the environment switch that runs it; deselected (not skipped) without it.
_TIERS = {"soak": "RELAYNA_SOAK", "slow_tier": "RELAYNA_SLOW_TIER"}


def _left_out(config: pytest.Config, item: pytest.Item) -> bool:
    if item.get_closest_marker("soak") is not None:
        return os.environ.get("RELAYNA_SOAK") != "1"
    if item.get_closest_marker("slow_tier") is not None:
        # Naming files or directories runs their slow-tier tests: only the
        # default whole-suite run (no paths, pytest's testpaths) leaves them out.
        whole_suite = config.args_source is not pytest.Config.ArgsSource.ARGS
        return whole_suite and os.environ.get("RELAYNA_SLOW_TIER") != "1"
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Two tiers leave the default run (``scripts/test`` with no paths) and are
    steps of their own in ``.ci/run``: the soak (marker ``soak``, only with
    ``RELAYNA_SOAK=1``) and the slow tier (marker ``slow_tier``: tests of tens of
    seconds each, such as schemathesis runs and whole-system browser tests; with
    ``RELAYNA_SLOW_TIER=1``, or when the run names their files). Left out means
    deselected, never skipped, so CI still runs every test."""
    left_out = [item for item in items if _left_out(config, item)]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        dropped = set(map(id, left_out))
        items[:] = [item for item in items if id(item) not in dropped]
