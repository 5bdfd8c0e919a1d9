"""``relayna serve TARGET``: serve a relayna.App or any ASGI app with hypercorn.

For an App: its status routes, ``/healthz`` + ``/readyz``, the task page and
``POST /tasks`` (``--no-page`` leaves both out), with the app's runtime
(store, broker, status hub) as the lifespan, and its worker in the same
process with ``--worker`` (the default on ``memory://``).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from typing import Any

import anyio
from starlette.applications import Starlette

from relayna.api import RelaynaRuntime, serve_asgi
from relayna.app import App
from relayna.cli._common import (
    Subcommands,
    UsageError,
    add_backend_arg,
    add_http_args,
    add_logging_args,
    load_target,
    run_async,
    wait_for_shutdown_signal,
)
from relayna.errors import ConfigurationError

log = logging.getLogger("relayna.serve")


def register(sub: Subcommands) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a relayna.App (or any ASGI app) with hypercorn",
        description=(
            "Serve TARGET with hypercorn on asyncio or trio until SIGINT/SIGTERM. TARGET is a "
            "relayna.App (status routes, /healthz, /readyz, the task page, and with --worker "
            "its worker) or any ASGI application."
        ),
    )
    p.add_argument("app", metavar="TARGET", help="a relayna.App or an ASGI app, as module:attr")
    add_http_args(p)
    add_backend_arg(p)
    p.add_argument(
        "--broker-url",
        default=None,
        help="App only: amqp://, amqps:// (a cluster: user:pw@h1:5672,h2:5672) or memory:// "
        "instead of the App's "
        "(which defaults to env RELAYNA_BROKER_URL, else memory://)",
    )
    p.add_argument(
        "--store-url",
        default=None,
        help="App only: redis://, rediss:// or memory:// instead of the App's "
        "(which defaults to env RELAYNA_STORE_URL, else memory://)",
    )
    p.add_argument(
        "--worker",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="App only: also run its worker in this process "
        "(default: on for a memory:// broker, which no other process can reach)",
    )
    p.add_argument(
        "--page",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="App only: serve the task page at / and POST /tasks (default on)",
    )
    add_logging_args(p)
    p.set_defaults(handler=_run)


def _exposing(runtime: RelaynaRuntime) -> Any:
    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[dict[str, Any]]:
        yield {"relayna": runtime}

    return lifespan


async def _open_target(
    stack: AsyncExitStack, target: Any, args: argparse.Namespace, stop: anyio.Event
) -> tuple[Any, str]:
    """The ASGI app to serve; an App is opened here (store, broker, hub, worker), so
    that a startup failure is one line and the ready line means ready."""
    if not isinstance(target, App):
        if args.broker_url or args.store_url or args.worker:
            raise UsageError("--broker-url, --store-url and --worker are for a relayna.App")
        return target, ""
    target.use(broker=args.broker_url, store=args.store_url)
    worker = args.worker
    if worker is None:
        url = target.broker_url
        worker = url is None or url.startswith("memory://")
    await stack.enter_async_context(target.open(worker=worker, shutdown_event=stop))
    app = Starlette(routes=target.routes(page=args.page), lifespan=_exposing(target.runtime))
    return app, f", worker {'on' if worker else 'off'}"


def _run(args: argparse.Namespace) -> int:
    target = load_target(args.app, what="ASGI app")

    async def main() -> None:
        stop = anyio.Event()

        async def trigger() -> None:
            await stop.wait()

        async with AsyncExitStack() as stack:
            app, note = await _open_target(stack, target, args, stop)
            await _serve(app, note, trigger, stop)
        log.info("bye")

    async def _serve(app: Any, note: str, trigger: Any, stop: anyio.Event) -> None:
        async with anyio.create_task_group() as tg:

            async def watch_signals() -> None:
                await wait_for_shutdown_signal()
                log.info("shutting down")
                stop.set()  # ends SSE streams before hypercorn waits for them

            tg.start_soon(watch_signals)
            try:
                url = await tg.start(
                    partial(
                        serve_asgi,
                        app,
                        host=args.host,
                        port=args.port,
                        shutdown_trigger=trigger,
                        access_log=args.access_log,
                    )
                )
            except OSError as exc:
                raise ConfigurationError(
                    f"cannot serve on {args.host}:{args.port}: {exc}"
                ) from None
            log.info("relayna serve: %s on %s (%s%s)", args.app, url, args.backend, note)
            await stop.wait()

    return run_async(main, args.backend)
