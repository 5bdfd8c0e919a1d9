"""Fixtures of the cancellation and deadline tests: an App on memory or on RabbitMQ + Redis."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import relayna


@pytest.fixture(
    params=[
        pytest.param("memory", id="memory"),
        pytest.param("real", id="rabbitmq+redis", marks=[pytest.mark.rabbitmq, pytest.mark.redis]),
    ]
)
def urls(request: pytest.FixtureRequest) -> tuple[str, str]:
    if request.param == "memory":
        return "memory://", "memory://"
    return request.getfixturevalue("amqp_url"), request.getfixturevalue("redis_url")


@pytest.fixture
def make_app(urls: tuple[str, str], unique: str) -> Callable[..., relayna.App]:
    def make(**options: Any) -> relayna.App:
        options.setdefault("prefetch", 4)
        return relayna.App(
            name=f"cx-{unique}",
            broker=urls[0],
            store=urls[1],
            cancel_grace=2.0,
            deadline_tolerance=0.0,
            **options,
        )

    return make
