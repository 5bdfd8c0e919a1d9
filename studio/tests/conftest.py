"""Fixtures of the relayna-studio tests.

The backend, services and CI fixtures are relayna's own (``tests/conftest.py``),
loaded from that file rather than copied. Studio adds: a store on each
adapter (memory and the real Redis), a table resolver for the egress policy,
loopback canary listeners, and an opened Studio with an HTTP client. Helpers
live in ``studio_support`` (a unique module name: every conftest is called
``conftest``).
"""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from studio_support import Canary, TableResolver, open_test_studio, settings_for

_ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "_relayna_root_conftest", _ROOT / "tests/conftest.py"
)
assert _spec is not None
assert _spec.loader is not None
_root = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_root)

anyio_backend = _root.anyio_backend
unique = _root.unique
services = _root.services
amqp_url = _root.amqp_url
redis_url = _root.redis_url
pytest_runtest_makereport = _root.pytest_runtest_makereport


@pytest.fixture(params=["memory", "redis"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(store_kind: str, request: pytest.FixtureRequest) -> str:
    if store_kind == "memory":
        return "memory://"
    return str(request.getfixturevalue("redis_url"))


@pytest.fixture
def resolver() -> TableResolver:
    return TableResolver()


@pytest.fixture
def canaries() -> Iterator[dict[str, Canary]]:
    made = {"v4": Canary("127.0.0.1"), "v6": Canary("::1")}
    try:
        yield made
    finally:
        for canary in made.values():
            canary.close()


@pytest.fixture
def studio_factory(store_url: str) -> Callable[..., Any]:
    """``async with studio_factory(**settings) as studio:`` on the parametrised store.

    The resolver defaults to an empty table: tests never ask a real DNS server.
    """

    def make(*, resolver: Any = None, **overrides: Any) -> Any:
        prefix = f"studio-test:{uuid.uuid4().hex[:10]}"
        return open_test_studio(
            settings_for(store_url, prefix, **overrides),
            resolver=TableResolver() if resolver is None else resolver,
        )

    return make


@pytest.fixture
def otlp_provider() -> Iterator[Any]:
    """A global tracer provider for this test only, exporting over OTLP/HTTP (set later)."""
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.util._once import Once

    def reset() -> None:
        trace._TRACER_PROVIDER_SET_ONCE = Once()
        trace._TRACER_PROVIDER = None

    reset()
    provider = TracerProvider(resource=Resource.create({"service.name": "checkout-worker"}))
    trace.set_tracer_provider(provider)
    try:
        yield provider
    finally:
        provider.shutdown()
        reset()
