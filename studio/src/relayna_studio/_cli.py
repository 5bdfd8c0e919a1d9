"""The ``relayna-studio`` command: ``serve`` and ``token create|list|revoke``.

Settings come from the ``RELAYNA_STUDIO_*`` environment (see ``docs/studio.md``).
Exit codes: 0 success, 1 runtime failure (store unreachable...), 2 usage or
configuration error. Errors are one line on stderr; token text is printed
only by ``token create``, once, on stdout.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence

import anyio
import attrs

from relayna.api import serve_asgi
from relayna.errors import ConfigurationError, ContractError, RelaynaError
from relayna.transport import open_store
from relayna_studio import __version__
from relayna_studio._app import create_studio_app
from relayna_studio._auth import TOKEN_KINDS, TokenStore
from relayna_studio._models import validate_service_id
from relayna_studio._settings import StudioSettings

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="relayna-studio",
        description="relayna-studio: the control plane that federates relayna services. "
        "Configuration is read from RELAYNA_STUDIO_* environment variables.",
    )
    parser.add_argument("--version", action="version", version=f"relayna-studio {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = sub.add_parser("serve", help="serve the Studio API with hypercorn until SIGINT/SIGTERM")
    serve.add_argument(
        "--host", default=None, help="bind address (default RELAYNA_STUDIO_HOST or 0.0.0.0)"
    )
    serve.add_argument(
        "--port", type=int, default=None, help="port (default RELAYNA_STUDIO_PORT or 8000)"
    )
    serve.add_argument(
        "--backend",
        choices=["asyncio", "trio"],
        default="asyncio",
        help="async backend (default asyncio)",
    )
    serve.add_argument("--access-log", action="store_true", help="log every request")
    _add_cluster_keys(serve)

    token = sub.add_parser("token", help="manage API tokens (writes the configured store)")
    _add_cluster_keys(token)
    tsub = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    create = tsub.add_parser("create", help="create a token and print it once")
    create.add_argument(
        "--role",
        required=True,
        choices=TOKEN_KINDS,
        help="reader (reads), operator (replay/retry/investigate/refresh), admin (registry "
        "writes, tokens, audit), or ingest (push events of one service)",
    )
    create.add_argument(
        "--name", required=True, help="who or what uses it (shown in the audit log)"
    )
    create.add_argument(
        "--service-id", default=None, help="the service an ingest token may push events for"
    )
    tsub.add_parser("list", help="list tokens (never their secret)")
    revoke = tsub.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("token_id", help="the token id (16 hex characters)")
    return parser


def _add_cluster_keys(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cluster-keys",
        action="store_true",
        default=None,
        help="use the Redis Cluster key layout (per-service hash tags; default "
        "RELAYNA_STUDIO_STORE_CLUSTER_KEYS, implied by a redis+cluster:// "
        "RELAYNA_STUDIO_REDIS_URL). Key names differ from the default layout: "
        "switching means a new, empty store (docs/studio.md, Redis Cluster)",
    )


def _serve(settings: StudioSettings, args: argparse.Namespace) -> int:
    host = args.host or settings.host
    port = settings.port if args.port is None else args.port
    app = create_studio_app(settings)

    async def run() -> None:
        stop = anyio.Event()
        async with anyio.create_task_group() as tg:

            async def watch_signals() -> None:
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for _ in signals:
                        stop.set()
                        return

            tg.start_soon(watch_signals)
            url = await tg.start(
                lambda task_status: serve_asgi(
                    app,
                    host=host,
                    port=port,
                    shutdown_trigger=stop.wait,
                    access_log=args.access_log,
                    task_status=task_status,
                )
            )
            print(f"relayna-studio: serving on {url} ({args.backend})", flush=True)
            await stop.wait()
        return None

    anyio.run(run, backend=args.backend)
    return 0


def _token(settings: StudioSettings, args: argparse.Namespace) -> int:
    async def run() -> int:
        async with open_store(settings.redis_url) as store:
            tokens = TokenStore(store, settings.global_prefix(settings.auth_prefix))
            if args.token_command == "create":
                service_id = (
                    None if args.service_id is None else validate_service_id(args.service_id)
                )
                text, record = await tokens.create(
                    name=args.name, role=args.role, service_id=service_id, created_by="cli"
                )
                print(text)
                print(
                    f"token {record['token_id']} ({record['role']}) created; "
                    "it is shown only this once",
                    file=sys.stderr,
                )
                return 0
            if args.token_command == "list":
                print(json.dumps(await tokens.list(), indent=2))
                return 0
            if not await tokens.revoke(args.token_id):
                print(f"relayna-studio: error: no token {args.token_id!r}", file=sys.stderr)
                return 1
            return 0

    return anyio.run(run)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = StudioSettings.from_env()
        if args.cluster_keys:
            settings = attrs.evolve(settings, store_cluster_keys=True)
        if args.command == "serve":
            return _serve(settings, args)
        return _token(settings, args)
    except (ConfigurationError, ContractError) as exc:
        print(f"relayna-studio: error: {exc}", file=sys.stderr)
        return 2
    except RelaynaError as exc:
        print(f"relayna-studio: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
