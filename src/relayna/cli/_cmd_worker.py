"""``relayna worker TARGET``: run a task consumer until a signal, then drain.

``TARGET`` is a :class:`relayna.App` (``myservice:app``: its topology, tasks,
retry policy and broker) or a handler (``myservice.tasks:handle`` with
``--topology``). Lifecycle statuses (``processing``, ``completed``,
``retrying``, ``failed``) are published by default, as in ``relayna dev``.

First SIGTERM/SIGINT: cancel the consumer, which stops taking deliveries and
drains in-flight tasks (``--drain-timeout``). A second signal ends the drain
at once (unfinished work is requeued) and the exit code is 1. A consumer that
cannot start exits 2 with one line (see :mod:`relayna.cli._errors`).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from contextlib import AsyncExitStack
from functools import partial
from typing import Any

import anyio
import attrs
from anyio import CancelScope
from anyio.abc import TaskStatus

from relayna._urls import redact_url
from relayna.api import serve_metrics
from relayna.app import App
from relayna.cli._common import (
    Subcommands,
    UsageError,
    add_backend_arg,
    add_cluster_keys_arg,
    add_logging_args,
    add_replica_args,
    cluster_keys,
    env_default,
    load_target,
    replica_options,
    run_async,
)
from relayna.consumer import Idempotency, LifecycleStatuses, RetryPolicy, TaskConsumer
from relayna.dlq import DLQStore, DLQStoreConfig
from relayna.observability import RelaynaMetrics
from relayna.rabbitmq import CancelStore, StatusTopology
from relayna.transport import open_broker, open_store

__all__ = ["main_worker", "register"]

logger = logging.getLogger("relayna.worker")

EXIT_OK = 0
EXIT_ABNORMAL = 1

_DEFAULT_DELAY_MS = RetryPolicy().delay_ms


def register(sub: Subcommands) -> None:
    p = sub.add_parser(
        "worker",
        help="run a task worker (MODULE:APP or MODULE:HANDLER) until SIGTERM, then drain",
        description=(
            "Consume tasks with retries, dead-lettering and lifecycle statuses until "
            "SIGINT/SIGTERM; the first signal drains in-flight tasks, a second one requeues "
            "them and exits 1. TARGET is a relayna.App (its tasks, topology and broker) or "
            "a handler `async def handle(task, ctx)` with --topology."
        ),
    )
    p.add_argument(
        "target", metavar="TARGET", help="a relayna.App or a handler, as module:attribute"
    )
    p.add_argument(
        "--topology",
        metavar="MODULE:TOPOLOGY",
        default=None,
        help="the task topology (required with a handler; an App has its own)",
    )
    p.add_argument(
        "--broker-url",
        default=env_default("RELAYNA_BROKER_URL"),
        help="amqp://, amqps:// (a cluster: user:pw@h1:5672,h2:5672) or memory:// (env RELAYNA_BROKER_URL; default: the App's)",
    )
    p.add_argument(
        "--store-url",
        default=None,
        help="redis:// store for durable idempotency keys (a task whose key completed is "
        "acked without running again), indexed DLQ records (relayna dlq list) and "
        "cancellation (relayna cancel: queued and running tasks); opt-in: "
        "RELAYNA_STORE_URL does not turn it on",
    )
    p.add_argument(
        "--prefix",
        default=None,
        help="status key prefix of the cancellation keys in --store-url "
        "(default: the App's store_config.prefix, else relayna)",
    )
    add_cluster_keys_arg(p)
    add_replica_args(p)
    p.add_argument(
        "--cancel-grace",
        type=float,
        default=5.0,
        help="seconds a cancelled handler's ctx.cleanup_scope() may run (default 5)",
    )
    p.add_argument(
        "--deadline-tolerance",
        type=float,
        default=1.0,
        help="seconds of clock skew forgiven before a task's deadline counts as passed (default 1)",
    )
    p.add_argument(
        "--queue", default=None, help="queue to consume (default: the topology's tasks queue)"
    )
    p.add_argument(
        "--consumer-name",
        default="relayna-worker",
        help="name in logs, statuses and DLQ records (default relayna-worker)",
    )
    p.add_argument(
        "--prefetch",
        type=int,
        default=None,
        help="unsettled deliveries and concurrent handlers (default: the topology's)",
    )
    add_backend_arg(p)
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=30.0,
        help="seconds in-flight tasks get after the first signal (default 30)",
    )
    p.add_argument(
        "--max-retries",
        type=int,
        default=None,
        help="retry a failed task this many times through <queue>.retry, then <queue>.dlq "
        "(default: the App's policy; none for a handler)",
    )
    p.add_argument(
        "--retry-delay-ms",
        type=int,
        default=None,
        help=f"delay of a retry in ms, the retry queue's x-message-ttl "
        f"(default {_DEFAULT_DELAY_MS}, as RetryPolicy)",
    )
    p.add_argument(
        "--lifecycle-statuses",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="publish processing/completed/retrying/failed statuses (default on)",
    )
    p.add_argument(
        "--error-messages",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="put the exception text in retrying/failed statuses (default on)",
    )
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
    add_logging_args(p)
    p.set_defaults(handler=_run)


def _retry_policy(args: argparse.Namespace, default: RetryPolicy | None) -> RetryPolicy | None:
    if args.max_retries is None and args.retry_delay_ms is None:
        return default
    base = default or RetryPolicy()
    try:
        return RetryPolicy(
            max_retries=base.max_retries if args.max_retries is None else args.max_retries,
            delay_ms=base.delay_ms if args.retry_delay_ms is None else args.retry_delay_ms,
            retry_queue_suffix=base.retry_queue_suffix,
            dead_letter_queue_suffix=base.dead_letter_queue_suffix,
            retry_priority_step=base.retry_priority_step,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def build_consumer(args: argparse.Namespace, target: Any) -> TaskConsumer:
    """The consumer ``relayna worker`` runs for ``target`` (an App or a handler)."""
    statuses = LifecycleStatuses(
        enabled=args.lifecycle_statuses, include_error_message=args.error_messages
    )
    common: dict[str, Any] = {
        "consumer_name": args.consumer_name,
        "prefetch": args.prefetch,
        "drain_timeout": args.drain_timeout,
        "statuses": statuses,
        "cancel_grace": args.cancel_grace,
        "deadline_tolerance": args.deadline_tolerance,
    }
    if args.prefix is None:
        args.prefix = target.store_config.prefix if isinstance(target, App) else "relayna"
    args.cluster_keys = cluster_keys(
        args, target.store_config.cluster if isinstance(target, App) else None
    )
    common.update(replica_options(args, env=not isinstance(target, App)))
    if args.queue is not None:
        common["queue"] = args.queue
    if args.metrics_port is not None:
        common["metrics"] = RelaynaMetrics(service=args.consumer_name)
    if isinstance(target, App):
        if args.topology is not None:
            raise UsageError("--topology is for handlers: an App has its own topology")
        broker = args.broker_url or target.broker_url
        if broker is None:
            raise UsageError("--broker-url (or RELAYNA_BROKER_URL) is required: the App has none")
        return target.consumer(
            broker=broker, retry_policy=_retry_policy(args, target.retry_policy()), **common
        )
    if args.topology is None:
        raise UsageError(
            f"{args.target} is not a relayna.App: pass --topology MODULE:TOPOLOGY for a handler"
        )
    if not args.broker_url:
        raise UsageError("--broker-url (or RELAYNA_BROKER_URL) is required")
    if not callable(target):
        raise UsageError(f"{args.target} is neither a relayna.App nor a handler")
    topology = load_target(args.topology, what="topology")
    if not isinstance(topology, StatusTopology) and callable(topology):
        topology = topology()
    return TaskConsumer(
        topology=topology,
        broker=args.broker_url,
        handler=target,
        retry_policy=_retry_policy(args, None),
        **common,
    )


async def _serve(
    args: argparse.Namespace,
    consumer: TaskConsumer,
    dlq_store_url: str | None = None,
    dlq_config: DLQStoreConfig | None = None,
) -> int:
    """Run ``consumer`` until a signal. Dead letters are recorded in the
    ``--store-url`` store, else in ``dlq_store_url`` (an App's own store)."""
    exit_code = EXIT_OK
    cluster = bool(getattr(args, "cluster_keys", False))
    if cluster:
        dlq_config = attrs.evolve(dlq_config or DLQStoreConfig(), cluster=True)
    if isinstance(consumer.broker, str):
        # Once before starting: a broker that cannot be reached (or refuses the
        # credentials) at start is a configuration error, not a reason to retry
        # forever. Connections lost later are retried by the consumer.
        async with open_broker(consumer.broker):
            pass
    async with AsyncExitStack() as stack:
        if args.store_url:
            store = await stack.enter_async_context(open_store(args.store_url))
            consumer.idempotency = Idempotency(store=store)
            if consumer.dlq_recorder is None:
                consumer.dlq_recorder = DLQStore(store, dlq_config)
            if consumer.cancels is None:
                consumer.cancels = CancelStore(store, prefix=args.prefix, cluster=cluster)
        elif dlq_store_url is not None and consumer.dlq_recorder is None:
            store = await stack.enter_async_context(open_store(dlq_store_url))
            consumer.dlq_recorder = DLQStore(store, dlq_config)
            if consumer.cancels is None:  # the App's store: its cancels too
                consumer.cancels = CancelStore(store, prefix=args.prefix, cluster=cluster)
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
                if consumer.metrics is not None:
                    metrics_url = await tg.start(
                        partial(
                            serve_metrics,
                            consumer.metrics,
                            host=args.metrics_host,
                            port=args.metrics_port,
                            shutdown_trigger=done.wait,
                        )
                    )
                    # A plain line (whatever the log format): scripts read the address.
                    print(
                        f"relayna worker metrics: {metrics_url}/metrics",
                        file=sys.stderr,
                        flush=True,
                    )
                broker = consumer.broker
                url = broker if isinstance(broker, str) else broker.url
                ready = (
                    f"relayna worker ready: {consumer.queue_name} on {redact_url(url)} "
                    f"({args.backend}, statuses {'on' if consumer.statuses.enabled else 'off'})"
                )
                # Exactly one ready line on stderr (scripts wait for it): through the
                # log when it shows INFO, else printed.
                if logger.isEnabledFor(logging.INFO):
                    logger.info("%s", ready)
                else:
                    print(ready, file=sys.stderr, flush=True)
                if url.startswith("memory://"):
                    logger.warning(
                        "memory:// is private to this process: nothing else can publish to "
                        "it (use `relayna serve APP --worker` for one process)"
                    )
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


def _run(args: argparse.Namespace) -> int:
    target = load_target(args.target, what="worker target")
    consumer = build_consumer(args, target)
    dlq_store_url = _app_dlq_store(target)
    dlq_config = target.dlq_config if isinstance(target, App) else None

    async def main() -> int:
        return await _serve(args, consumer, dlq_store_url, dlq_config)

    return run_async(main, args.backend)


def _app_dlq_store(target: Any) -> str | None:
    """An App's store URL for its dead letters: only a shared one (a
    ``memory://`` store in this process would be seen by nobody)."""
    if not isinstance(target, App) or target.dlq_config is None:
        return None
    url = target.store_url
    return None if url is None or url.startswith("memory:") else url


def main_worker(argv: Sequence[str] | None = None) -> int:
    """``relayna worker ARGV...``; returns the process exit code."""
    from relayna.cli._main import main

    return main(["worker", *(sys.argv[1:] if argv is None else argv)])
