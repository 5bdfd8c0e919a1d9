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
