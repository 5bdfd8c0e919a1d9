"""The service of ``shared_tasks_sse.py``, explicitly under trio.

What it shows
-------------
Nothing in relayna is tied to asyncio. This file imports the *same* topology,
worker, Starlette app and demo as ``shared_tasks_sse.py`` and only changes
the event loop: ``anyio.run(main, backend="trio")``. The runtime, the status
hub, the worker's drain, the SSE stream and hypercorn (``hypercorn.trio``,
picked by ``_common.serve_http`` from the running backend) all run on trio
unchanged. ``main`` checks that it really runs on trio and reports the
backend next to the statuses it read over SSE.

Run it (``--backend`` is not offered: this example is trio by definition)::

    python examples/trio_app.py
    python examples/trio_app.py --broker-url amqp://guest:guest@127.0.0.1:5672/ \\
                                --store-url redis://127.0.0.1:6379/0

Needs trio (``pip install relayna[trio]``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from functools import partial
from typing import Any

import anyio
import shared_tasks_sse
import sniffio
from _common import MEMORY


async def main(
    *, broker_url: str = MEMORY, store_url: str = MEMORY, **options: Any
) -> dict[str, Any]:
    """Run the demo of ``shared_tasks_sse``; return the backend and the SSE statuses."""
    backend = sniffio.current_async_library()
    if backend != "trio":
        raise RuntimeError(f"this example is meant to run under trio, not {backend}")
    events = await shared_tasks_sse.main(broker_url=broker_url, store_url=store_url, **options)
    print(f"ran on {backend} (trio {__import__('trio').__version__})")
    return {"backend": backend, "events": events}


def run(argv: Sequence[str] | None = None, **options: Any) -> dict[str, Any]:
    """Parse ``--broker-url`` / ``--store-url`` and run :func:`main` under trio."""
    parser = argparse.ArgumentParser(description="shared_tasks_sse.py under trio")
    parser.add_argument("--broker-url", default=os.environ.get("RELAYNA_BROKER_URL", MEMORY))
    parser.add_argument("--store-url", default=os.environ.get("RELAYNA_STORE_URL", MEMORY))
    args = parser.parse_args(argv)
    result: dict[str, Any] = anyio.run(
        partial(main, broker_url=args.broker_url, store_url=args.store_url, **options),
        backend="trio",  # <- the only difference from shared_tasks_sse.py
    )
    return result


if __name__ == "__main__":
    run()
    sys.exit(0)
