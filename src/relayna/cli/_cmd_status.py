"""``relayna status``, ``history`` (from the store) and ``watch`` (follow SSE live)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from relayna.cli._common import (
    Subcommands,
    UsageError,
    add_backend_arg,
    add_cluster_keys_arg,
    cluster_keys,
    env_default,
    run_async,
)
from relayna.contracts import is_valid_identifier


def _store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("task_id", metavar="TASK_ID", help="the task's id")
    p.add_argument(
        "--store-url",
        default=env_default("RELAYNA_STORE_URL"),
        help="redis://, rediss:// or unix:// store (env RELAYNA_STORE_URL)",
    )
    p.add_argument("--prefix", default="relayna", help="status key prefix (default relayna)")
    add_cluster_keys_arg(p)
    p.add_argument("--json", action="store_true", help="print raw JSON")
    add_backend_arg(p)


def register(sub: Subcommands) -> None:
    s = sub.add_parser(
        "status",
        help="print a task's latest status",
        description="Print the latest stored status of TASK_ID.",
    )
    _store_args(s)
    s.set_defaults(handler=_status)

    h = sub.add_parser(
        "history",
        help="print a task's stored status history",
        description="Print TASK_ID's stored status events, oldest first.",
    )
    _store_args(h)
    h.add_argument("--limit", type=int, default=50, help="newest N events (default 50)")
    h.set_defaults(handler=_history)

    w = sub.add_parser(
        "watch",
        help="follow a task live over SSE with a progress display",
        description="Follow /events/TASK_ID of a running relayna service until the task ends.",
    )
    w.add_argument("task_id", metavar="TASK_ID", help="the task's id")
    w.add_argument(
        "--url",
        default=env_default("RELAYNA_URL", "http://127.0.0.1:8000"),
        help="service base URL (default http://127.0.0.1:8000, env RELAYNA_URL)",
    )
    w.add_argument("--json", action="store_true", help="print each event as JSON")
    w.add_argument(
        "--wait",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help=(
            "give up (exit 1) when the service has no status at all for TASK_ID after "
            "this long: an unknown id, or a task no worker has started "
            "(default 60; 0 = only if it has one now)"
        ),
    )
    w.set_defaults(handler=_watch)


def _detail(body: bytes) -> str:
    """The ``detail`` of a JSON error body, else the body's start."""
    try:
        detail = json.loads(body).get("detail")
    except (ValueError, AttributeError):
        detail = None
    return str(detail) if detail else body[:200].decode(errors="replace")


def _check_id(task_id: str) -> None:
    if not is_valid_identifier(task_id):
        raise UsageError(f"invalid task id {task_id!r}")


def format_event(event: dict[str, Any]) -> str:
    stamp = str(event.get("timestamp", ""))[11:23]
    line = f"{stamp:<12} {event.get('status', '?')!s:<16}"
    meta = event.get("meta") or {}
    progress = meta.get("progress") if isinstance(meta, dict) else None
    if isinstance(progress, int | float):
        filled = max(0, min(20, round(progress * 20)))
        line += f" [{'#' * filled}{'.' * (20 - filled)}] {progress:4.0%}"
    if event.get("message"):
        line += f"  {event['message']}"
    if event.get("result") is not None:
        line += f"  result={json.dumps(event['result'])}"
    return line


async def _with_status(args: argparse.Namespace, fn: Any) -> Any:
    from relayna.status import StatusStore, StatusStoreConfig
    from relayna.transport import open_store

    if not args.store_url:
        raise UsageError("--store-url (or RELAYNA_STORE_URL) is required")
    async with open_store(args.store_url) as store:
        config = StatusStoreConfig(prefix=args.prefix, cluster=cluster_keys(args))
        return await fn(StatusStore(store, config))


def _status(args: argparse.Namespace) -> int:
    _check_id(args.task_id)
    found: list[Any] = []

    async def main() -> None:
        found.append(await _with_status(args, lambda st: st.latest(args.task_id)))

    code = run_async(main, args.backend)
    event = found[0] if found else None
    if event is None:
        print(f"relayna: no status stored for {args.task_id}", file=sys.stderr)
        return 1
    print(json.dumps(event) if args.json else format_event(event))
    return code


def _history(args: argparse.Namespace) -> int:
    _check_id(args.task_id)
    if args.limit < 1:
        raise UsageError("--limit must be >= 1")
    found: list[Any] = []

    async def main() -> None:
        found.extend(await _with_status(args, lambda st: st.history(args.task_id, args.limit)))

    code = run_async(main, args.backend)
    for event in reversed(found):
        print(json.dumps(event) if args.json else format_event(event))
    if not found:
        print(f"relayna: no history stored for {args.task_id}", file=sys.stderr)
        return 1
    return code


def _watch(args: argparse.Namespace) -> int:
    _check_id(args.task_id)
    if not (args.wait >= 0 and math.isfinite(args.wait)):
        raise UsageError("--wait must be a number of seconds >= 0")
    import httpx

    url = f"{args.url.rstrip('/')}/events/{args.task_id}"
    kind = None
    final = None
    try:
        with (
            # the server holds the answer up to --wait seconds before it starts
            httpx.Client(timeout=httpx.Timeout(10.0, read=max(60.0, args.wait + 15))) as client,
            client.stream(
                "GET",
                url,
                params={"wait": f"{args.wait:g}"},
                headers={"accept": "text/event-stream"},
            ) as resp,
        ):
            if resp.status_code == 204:
                print("task already finished (204)")
                return 0
            if resp.status_code == 404:
                print(f"relayna: {_detail(resp.read())}", file=sys.stderr)
                return 1
            if resp.status_code != 200:
                raise UsageError(f"{url} answered {resp.status_code}: {resp.read()[:200]!r}")
            for line in resp.iter_lines():
                if line.startswith("event:"):
                    kind = line[6:].strip()
                    if kind == "resync":
                        print("(resynced from history)")
                elif line.startswith("data:") and kind == "status":
                    event = json.loads(line[5:])
                    final = event.get("status")
                    print(json.dumps(event) if args.json else format_event(event), flush=True)
    except httpx.HTTPError as exc:
        print(f"relayna: error: cannot follow {url}: {exc}", file=sys.stderr)
        return 1
    return 0 if str(final).lower() == "completed" else 1
