"""relayna dev's demo service plus Studio serving its web UI, in one process.

The browser tests and ``python -m benchmarks ui`` start this as a subprocess:

    python tests/e2e/_studio_stack.py --backend trio --service-port P --studio-port Q [--auth]

It opens the demo service (memory broker and store, the demo worker that
reports progress, retries and dead-letters; see ``relayna.devserver``) and a
Studio (memory store, egress allowed to 127.0.0.0/8 only, auth off unless
``--auth``) in one task group, prints one JSON line
``{"ready": true, "studio": URL, "service": URL, "tokens": {role: token}}``
when both accept connections, and stops on SIGINT/SIGTERM (or stdin closing).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from functools import partial

import anyio

from relayna.api import serve_asgi
from relayna.devserver import DevConfig, run_dev
from relayna_studio import StudioSettings, open_studio, run_studio_jobs, studio_app

READY = '"ready": true'


async def _wait_listening(port: int) -> None:
    while True:
        try:
            stream = await anyio.connect_tcp("127.0.0.1", port)
        except OSError:
            await anyio.sleep(0.02)
            continue
        await stream.aclose()
        return


async def _run(args: argparse.Namespace) -> None:
    shutdown = anyio.Event()
    settings = StudioSettings(
        redis_url="memory://",
        allowed_hosts=(),
        allowed_networks=("127.0.0.0/8",),
        auth_enabled=args.auth,
        pull_sync_interval_seconds=0.5,
        health_refresh_interval_seconds=2.0,
        retention_prune_interval_seconds=None,
        federation_timeout_seconds=5.0,
    )
    dev = DevConfig(port=args.service_port, step_seconds=args.step_seconds, retry_delay_ms=400)

    async def signals() -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as received:
            async for _ in received:
                shutdown.set()
                return

    async with anyio.create_task_group() as tg:
        tg.start_soon(signals)
        async with anyio.create_task_group() as parts:
            service_url = await parts.start(run_dev, dev, shutdown)
            async with open_studio(settings) as runtime:
                tokens = {}
                if args.auth:
                    for role in ("reader", "operator", "admin"):
                        tokens[role], _ = await runtime.tokens.create(
                            name=f"e2e-{role}", role=role, created_by="e2e"
                        )
                async with anyio.create_task_group() as studio:
                    await studio.start(run_studio_jobs, runtime)
                    app = studio_app(runtime)
                    studio.start_soon(
                        partial(
                            serve_asgi,
                            app,
                            host="127.0.0.1",
                            port=args.studio_port,
                            shutdown_trigger=shutdown.wait,
                        )
                    )
                    with anyio.fail_after(15):
                        await _wait_listening(args.studio_port)
                    ready = {"ready": True, "studio": f"http://127.0.0.1:{args.studio_port}",
                             "service": service_url.rstrip("/"), "tokens": tokens}  # fmt: skip
                    print(json.dumps(ready), flush=True)
                    await shutdown.wait()
                    studio.cancel_scope.cancel()
            # run_dev drains its worker after the shutdown and returns by itself.
        tg.cancel_scope.cancel()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--service-port", type=int, required=True)
    parser.add_argument("--studio-port", type=int, required=True)
    parser.add_argument("--auth", action="store_true", help="auth on, with one token per role")
    parser.add_argument("--step-seconds", type=float, default=0.4)
    args = parser.parse_args(argv)
    anyio.run(_run, args, backend=args.backend)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
