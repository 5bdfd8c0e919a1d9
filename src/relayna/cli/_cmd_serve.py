"""``relayna serve module:app``: run an ASGI app on hypercorn, asyncio or trio."""

from __future__ import annotations

import argparse

import anyio

from relayna.api import serve_asgi
from relayna.cli._common import (
    Subcommands,
    env_default,
    load_target,
    run_async,
    wait_for_shutdown_signal,
)


def register(sub: Subcommands) -> None:
    p = sub.add_parser(
        "serve",
        help="serve an ASGI app (e.g. one using relayna's status routes) with hypercorn",
        description="Serve MODULE:APP with hypercorn on asyncio or trio until SIGINT/SIGTERM.",
    )
    p.add_argument("app", metavar="MODULE:APP", help="the ASGI application to serve")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument(
        "--backend",
        choices=["asyncio", "trio"],
        default=env_default("RELAYNA_BACKEND", "asyncio"),
        help="async backend (default asyncio, env RELAYNA_BACKEND)",
    )
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    app = load_target(args.app, what="ASGI app")

    async def main() -> None:
        print(f"relayna: serving {args.app} on http://{args.host}:{args.port} ({args.backend})")
        stop = anyio.Event()

        async def trigger() -> None:
            await stop.wait()

        async with anyio.create_task_group() as tg:

            async def watch_signals() -> None:
                await wait_for_shutdown_signal()
                stop.set()

            tg.start_soon(watch_signals)
            await serve_asgi(
                app,
                host=args.host,
                port=args.port,
                shutdown_trigger=trigger,
                access_log=args.access_log,
            )
            tg.cancel_scope.cancel()

    return run_async(main, args.backend)
