"""A Redis for a benchmark: RELAYNA_TEST_REDIS_URL when set, else a throwaway server."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
