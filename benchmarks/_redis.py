"""Servers for a benchmark: a Redis (RELAYNA_TEST_REDIS_URL when set, else a throwaway
server), or RabbitMQ and Redis together; and removing a benchmark's keys."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def redis_url() -> Iterator[str]:
    """The URL of a Redis to measure against (started here and stopped after if needed)."""
    url = os.environ.get("RELAYNA_TEST_REDIS_URL")
    if url:
        yield url
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    from services import Services, free_port

    svc = Services(
        directory="", amqp_port=0, mgmt_port=0, stream_port=0, dist_port=0, redis_port=0, node=""
    )
    svc.directory = tempfile.mkdtemp(prefix="relayna-bench-")
    svc.redis_port = free_port()
    svc.start_redis()
    try:
        yield svc.redis_url
    finally:
        svc.stop_redis()
        shutil.rmtree(svc.directory, ignore_errors=True)


def amqp_and_redis_urls() -> tuple[str, str]:
    """RELAYNA_TEST_AMQP_URL and RELAYNA_TEST_REDIS_URL when both are set, else both
    servers started with scripts/services.py, running until the process exits."""
    amqp, redis = os.environ.get("RELAYNA_TEST_AMQP_URL"), os.environ.get("RELAYNA_TEST_REDIS_URL")
    if amqp and redis:
        return amqp, redis
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    from services import Services

    svc = Services.start()
    atexit.register(svc.stop)  # servers and their directory go with the benchmark
    os.environ.update(svc.env())
    return svc.amqp_url, svc.redis_url


async def drop_prefix(redis: Any, prefix: str) -> None:
    """Delete every key under ``prefix:`` with a redis-py asyncio client."""
    keys = [key async for key in redis.scan_iter(match=f"{prefix}:*")]
    if keys:
        await redis.delete(*keys)
