"""``relayna dev``: the whole system in one process: the demo service, its worker, and Studio."""

from __future__ import annotations

import argparse
import logging
from functools import partial

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
        help="run the demo service, its worker and Studio in one process",
        description=(
            "Start the whole system in one process: the in-memory broker and store (or real "
            "ones with --broker-url/--store-url), the demo topology, worker and status hub, "
            "the service's HTTP API and task page, and relayna Studio (the operator UI, auth "
            "off, loopback only) with the demo service registered. It prints the Studio URL "
            "of the task list. Studio needs the relayna-studio distribution (pip install -e "
            "./studio from a clone); without it the service runs alone. Ctrl-C drains."
        ),
    )
    add_http_args(p)
    add_backend_arg(p)
    p.add_argument(
        "--broker-url",
        default=env_default("RELAYNA_BROKER_URL", "memory://"),
        help="amqp://, amqps:// (a cluster: user:pw@h1:5672,h2:5672) or memory:// (default memory://, env RELAYNA_BROKER_URL)",
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
    p.add_argument(
        "--studio-port",
        type=int,
        default=8001,
        help="port of Studio, bound to 127.0.0.1 whatever --host says (default 8001)",
    )
    p.add_argument(
        "--no-studio",
        action="store_true",
        help="run the service without Studio (the default starts it when relayna-studio "
        "is installed)",
    )
    add_logging_args(p)
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from relayna.devserver import (
        STUDIO_INSTALL_HINT,
        DevConfig,
        DevStudioConfig,
        run_dev_system,
        studio_installed,
    )

    config = DevConfig(
        host=args.host,
        port=args.port,
        broker_url=args.broker_url,
        store_url=args.store_url,
        drain_timeout=args.drain_timeout,
        access_log=args.access_log,
    )
    log = logging.getLogger("relayna.dev")
    studio = None
    if not args.no_studio:
        if studio_installed():
            studio = DevStudioConfig(port=args.studio_port)
        else:
            log.warning("relayna-studio is not installed: %s", STUDIO_INSTALL_HINT)

    async def main() -> None:
        shutdown = anyio.Event()
        async with anyio.create_task_group() as tg:

            async def on_signal() -> None:
                await wait_for_shutdown_signal()
                log.info("shutting down (Ctrl-C again to stop at once)")
                shutdown.set()

            tg.start_soon(on_signal)
            try:
                urls = await tg.start(partial(run_dev_system, config, shutdown, studio=studio))
            except OSError as exc:
                where = config.url if studio is None else f"{config.url} or {studio.url}"
                raise ConfigurationError(f"cannot serve on {where}: {exc}") from None
            if urls.studio is not None:
                log.info("Studio: %s  <- open this: the demo service's tasks", urls.studio)
            log.info(
                "relayna dev is running on %s (%s); press Ctrl-C to stop",
                urls.service,
                args.backend,
            )
            await shutdown.wait()
        log.info("bye")

    return run_async(main, args.backend)
