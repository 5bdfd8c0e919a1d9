"""``relayna dev``: the whole runtime in one process, with a web page to watch tasks."""

from __future__ import annotations

import argparse
import logging

import anyio

from relayna.cli._common import (
    Subcommands,
    add_backend_arg,
    add_http_args,
    add_logging_args,
    env_default,
    run_async,
    wait_for_shutdown_signal,
)
from relayna.errors import ConfigurationError


def register(sub: Subcommands) -> None:
    p = sub.add_parser(
        "dev",
        help="run broker, store, demo worker, status hub and web page in one process",
        description=(
            "Start the demo service: the in-memory broker and store (or real ones with "
            "--broker-url/--store-url), a demo topology and worker, the status hub, and a "
            "web page where you submit tasks and watch them live over SSE. Ctrl-C drains."
        ),
    )
    add_http_args(p)
    add_backend_arg(p)
    p.add_argument(
        "--broker-url",
        default=env_default("RELAYNA_BROKER_URL", "memory://"),
        help="amqp://, amqps:// or memory:// (default memory://, env RELAYNA_BROKER_URL)",
    )
    p.add_argument(
        "--store-url",
        default=env_default("RELAYNA_STORE_URL", "memory://"),
        help="redis://, rediss:// or memory:// (default memory://, env RELAYNA_STORE_URL)",
    )
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=10.0,
        help="seconds in-flight tasks get on Ctrl-C (default 10)",
    )
    add_logging_args(p)
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from relayna.devserver import DevConfig, run_dev

    config = DevConfig(
        host=args.host,
        port=args.port,
        broker_url=args.broker_url,
        store_url=args.store_url,
        drain_timeout=args.drain_timeout,
        access_log=args.access_log,
    )
    log = logging.getLogger("relayna.dev")

    async def main() -> None:
        shutdown = anyio.Event()
        async with anyio.create_task_group() as tg:

            async def on_signal() -> None:
                await wait_for_shutdown_signal()
                log.info("shutting down (Ctrl-C again to stop at once)")
                shutdown.set()

            tg.start_soon(on_signal)
            try:
                url = await tg.start(run_dev, config, shutdown)
            except OSError as exc:
                raise ConfigurationError(f"cannot serve on {config.url}: {exc}") from None
            log.info("relayna dev is running on %s (%s); press Ctrl-C to stop", url, args.backend)
            await shutdown.wait()
        log.info("bye")

    return run_async(main, args.backend)
