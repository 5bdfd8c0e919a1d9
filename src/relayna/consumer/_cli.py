"""``relayna worker module:handler``: run a :class:`TaskConsumer` until a signal.

First SIGTERM/SIGINT: cancel the consumer, which stops taking deliveries and
drains in-flight tasks (``--drain-timeout``). A second signal ends the drain
at once (unfinished work is requeued) and the exit code is 1. Any failure of
the consumer also exits non-zero (2 for usage/configuration errors).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from contextlib import AsyncExitStack
from functools import partial
from typing import Any

import anyio
from anyio import CancelScope
from anyio.abc import TaskStatus

from relayna._imports import load_target
from relayna.errors import ConfigurationError, RelaynaError
from relayna.observability import RelaynaMetrics
from relayna.rabbitmq import StatusTopology
from relayna.transport import open_store

from ._decide import RetryPolicy
from ._idempotency import Idempotency
from ._task import TaskConsumer

__all__ = ["main_worker"]

logger = logging.getLogger("relayna.worker")

EXIT_OK = 0
EXIT_ABNORMAL = 1
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="relayna worker", description="Run a relayna task worker.")
    p.add_argument("handler", help="the handler, as module:attribute")
    p.add_argument("--topology", required=True, help="the topology object, as module:attribute")
    p.add_argument(
        "--broker-url",
        default=os.environ.get("RELAYNA_BROKER_URL"),
        help="amqp://, amqps:// or memory:// (env RELAYNA_BROKER_URL)",
    )
    p.add_argument(
        "--store-url",
        default=os.environ.get("RELAYNA_STORE_URL"),
        help="redis:// store for durable idempotency keys (optional)",
    )
    p.add_argument("--queue", default=None, help="queue to consume (default: the tasks queue)")
    p.add_argument("--consumer-name", default="relayna-worker")
    p.add_argument("--prefetch", type=int, default=None)
    p.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    p.add_argument("--drain-timeout", type=float, default=30.0)
    p.add_argument(
        "--max-retries", type=int, default=None, help="enable broker retries with this many retries"
    )
    p.add_argument("--retry-delay-ms", type=int, default=30_000)
    p.add_argument("--log-level", default=os.environ.get("RELAYNA_LOG_LEVEL", "INFO"))
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve Prometheus metrics on http://HOST:PORT/metrics (0 picks a free port)",
    )
    p.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        help="address the metrics server listens on (default 127.0.0.1; 0.0.0.0 for all)",
    )
    return p


#: Serves a RelaynaMetrics until shutdown (``relayna.api.serve_metrics``); the CLI passes it.
MetricsServer = Callable[..., Coroutine[Any, Any, None]]


async def _serve(
    args: argparse.Namespace,
    handler: Any,
    topology: StatusTopology,
    metrics_server: MetricsServer | None = None,
) -> int:
    exit_code = EXIT_OK
    policy = (
        RetryPolicy(max_retries=args.max_retries, delay_ms=args.retry_delay_ms)
        if args.max_retries is not None
        else None
    )
    metrics = RelaynaMetrics(service=args.consumer_name) if args.metrics_port is not None else None
    async with AsyncExitStack() as stack:
        idempotency = None
        if args.store_url:
            store = await stack.enter_async_context(open_store(args.store_url))
            idempotency = Idempotency(store=store)
        consumer = TaskConsumer(
            topology=topology,
            broker=args.broker_url,
            handler=handler,
            queue=args.queue,
            consumer_name=args.consumer_name,
            prefetch=args.prefetch,
            retry_policy=policy,
            drain_timeout=args.drain_timeout,
            idempotency=idempotency,
            metrics=metrics,
        )
        consumer_scope = CancelScope()
        done = anyio.Event()

        async def run_consumer(
            *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
        ) -> None:
            try:
                with consumer_scope:
                    await consumer.run(task_status=task_status)
            finally:
                done.set()

        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with anyio.create_task_group() as tg:

                async def watch() -> None:
                    nonlocal exit_code
                    count = 0
                    async for signum in signals:
                        count += 1
                        if count == 1:
                            logger.info(
                                "signal %s: draining (up to %.1fs)", signum, args.drain_timeout
                            )
                            consumer_scope.cancel()
                        else:
                            logger.warning(
                                "signal %s: ending the drain now (work is requeued)", signum
                            )
                            exit_code = EXIT_ABNORMAL
                            consumer.end_drain()

                tg.start_soon(watch)
                await tg.start(run_consumer)
                if metrics is not None and metrics_server is not None:
                    url = await tg.start(
                        partial(
                            metrics_server,
                            metrics,
                            host=args.metrics_host,
                            port=args.metrics_port,
                            shutdown_trigger=done.wait,
                        )
                    )
                    logger.info("metrics on %s/metrics", url)
                    print(f"relayna worker metrics: {url}/metrics", file=sys.stderr, flush=True)
                logger.info("relayna worker ready: consuming %r", consumer.queue_name)
                print(f"relayna worker ready: {consumer.queue_name}", file=sys.stderr, flush=True)
                await done.wait()
                tg.cancel_scope.cancel()
        stats = consumer.stats
        logger.info(
            "relayna worker stopped: received=%d acked=%d retried=%d dead_lettered=%d",
            stats.received,
            stats.acked,
            stats.retried,
            stats.dead_lettered,
        )
    return exit_code


def main_worker(
    argv: Sequence[str] | None = None, *, metrics_server: MetricsServer | None = None
) -> int:
    """Entry point of ``relayna worker``; returns the process exit code.

    ``metrics_server`` serves ``--metrics-port`` (the CLI passes
    :func:`relayna.api.serve_metrics`; the consumer package cannot import the API).
    """
    args = _parser().parse_args(argv)
    if args.metrics_port is not None and metrics_server is None:
        print("relayna worker: --metrics-port needs `relayna worker`", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if not args.broker_url:
        print("relayna worker: --broker-url or RELAYNA_BROKER_URL is required", file=sys.stderr)
        return EXIT_USAGE
    try:
        handler = load_target(args.handler, what="handler")
        topology = load_target(args.topology, what="topology")
    except ConfigurationError as exc:
        print(f"relayna worker: cannot load: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not isinstance(topology, StatusTopology) and callable(topology):
        topology = topology()
    try:
        return anyio.run(_serve, args, handler, topology, metrics_server, backend=args.backend)
    except (RelaynaError, ExceptionGroup) as exc:
        logger.error("relayna worker failed: %s", exc, exc_info=exc)
        return EXIT_ABNORMAL
