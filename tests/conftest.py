"""Shared fixtures: both async backends, real services, unique names."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture(
    params=[
        pytest.param("asyncio", id="asyncio"),
        pytest.param("trio", id="trio"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def unique() -> str:
    """A short unique token for queue/exchange names and key prefixes."""
    return uuid.uuid4().hex[:12]


# -- real services -----------------------------------------------------------
# One RabbitMQ and one Redis per test run. `.ci/run` starts them once and
# exports their URLs; a developer running pytest directly gets them started
# (and stopped) by this fixture. A failure to start is an error, never a skip.

import os  # noqa: E402
import sys  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from services import Services  # noqa: E402


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


@pytest.fixture(scope="session")
def amqp_url(services: Services) -> str:
    return services.amqp_url


@pytest.fixture(scope="session")
def redis_url(services: Services) -> str:
    return services.redis_url
