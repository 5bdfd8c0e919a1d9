"""``relayna dlq list|show|replay|import``: the DLQ records in the store, from a terminal.

Reads the DLQ store directly (``--store-url``); ``replay`` and ``import`` also
open the broker (``--broker-url``). Exit codes: 0 done, 1 not found / refused
(409) / unreachable, 2 usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from relayna.cli._common import (
    Subcommands,
    UsageError,
    add_cluster_keys_arg,
    cluster_keys,
    env_default,
    run_async,
)


def _common(p: argparse.ArgumentParser, *, broker: bool = False) -> None:
    p.add_argument(
        "--store-url",
        default=env_default("RELAYNA_STORE_URL"),
        help="redis://, rediss:// or unix:// store holding the records (env RELAYNA_STORE_URL)",
    )
    p.add_argument("--prefix", default="relayna", help="DLQ key prefix (default relayna)")
    add_cluster_keys_arg(p)
    if broker:
        p.add_argument(
            "--broker-url",
            default=env_default("RELAYNA_BROKER_URL"),
            help="amqp:// or amqps:// broker to publish to (env RELAYNA_BROKER_URL)",
        )
    p.add_argument("--json", action="store_true", help="print raw JSON")
    p.add_argument(
        "--backend",
        choices=["asyncio", "trio"],
        default=env_default("RELAYNA_BACKEND", "asyncio"),
        help="async backend (default asyncio, env RELAYNA_BACKEND)",
    )


def register(sub: Subcommands) -> None:
    p = sub.add_parser(
        "dlq",
        help="list, show and replay dead-lettered messages",
        description="Work with the DLQ records that workers wrote to the store.",
    )
    dlq = p.add_subparsers(dest="dlq_command", metavar="ACTION")

    ls = dlq.add_parser("list", help="list records, newest first", description="List DLQ records.")
    _common(ls)
    ls.add_argument("--queue", help="only this DLQ queue")
    ls.add_argument("--source-queue", help="only records from this source queue")
    ls.add_argument("--task-id", help="only this task")
    ls.add_argument("--reason", help="only this failure reason")
    ls.add_argument(
        "--state", choices=["dead_lettered", "replaying", "replayed"], help="only this state"
    )
    ls.add_argument("--limit", type=int, default=50, help="records per page, 1..200 (default 50)")
    ls.add_argument("--cursor", help="continue after this cursor (printed after a full page)")
    ls.set_defaults(handler=_list)

    show = dlq.add_parser("show", help="show one record", description="Show one DLQ record.")
    show.add_argument("dlq_id", metavar="DLQ_ID", help="the record id (relayna dlq list shows it)")
    _common(show)
    show.set_defaults(handler=_show)

    replay = dlq.add_parser(
        "replay",
        help="publish a record's message again",
        description=(
            "Replay DLQ_ID: publish its original bytes to its retry queue (or the source "
            "queue with --direct, or --target-queue) with confirm, and mark it replayed."
        ),
    )
    replay.add_argument(
        "dlq_id", metavar="DLQ_ID", help="the record id (relayna dlq list shows it)"
    )
    _common(replay, broker=True)
    replay.add_argument("--force", action="store_true", help="replay again (already replayed)")
    replay.add_argument("--direct", action="store_true", help="to the source queue, no delay")
    replay.add_argument("--target-queue", help="publish to this queue instead")
    replay.set_defaults(handler=_replay)

    imp = dlq.add_parser(
        "import",
        help="index live messages of a DLQ queue (e.g. dead-lettered by RabbitMQ itself)",
        description=(
            "Read up to --limit messages of QUEUE (left in the queue) and add a record for "
            "each, so they can be listed and replayed. Importing twice adds nothing."
        ),
    )
    imp.add_argument("queue", metavar="QUEUE", help="the DLQ queue to read, e.g. tasks.q.dlq")
    _common(imp, broker=True)
    imp.add_argument("--limit", type=int, default=50, help="messages to read, 1..200 (default 50)")
    imp.set_defaults(handler=_import)

    def usage(_args: argparse.Namespace) -> int:
        p.print_help(sys.stderr)
        return 2

    p.set_defaults(handler=usage)


def _with_service(
    args: argparse.Namespace, fn: Callable[[Any], Awaitable[Any]], *, broker: bool = False
) -> Any:
    from contextlib import AsyncExitStack

    from relayna.dlq import DLQService, DLQStore, DLQStoreConfig, PeekDLQInspector
    from relayna.status import StatusStore, StatusStoreConfig
    from relayna.transport import SupportsPeek, open_broker, open_store

    if not args.store_url:
        raise UsageError("--store-url (or RELAYNA_STORE_URL) is required")
    if broker and not args.broker_url:
        raise UsageError("--broker-url (or RELAYNA_BROKER_URL) is required")
    found: list[Any] = []

    async def main() -> None:
        async with AsyncExitStack() as stack:
            store = await stack.enter_async_context(open_store(args.store_url))
            opened = None
            if broker:
                opened = await stack.enter_async_context(open_broker(args.broker_url))
            inspector = PeekDLQInspector(opened) if isinstance(opened, SupportsPeek) else None
            cluster = cluster_keys(args)
            service = DLQService(
                DLQStore(store, DLQStoreConfig(prefix=args.prefix, cluster=cluster)),
                opened,
                status=StatusStore(store, StatusStoreConfig(prefix=args.prefix, cluster=cluster)),
                inspector=inspector,
                broker_queue_names=[args.queue] if getattr(args, "queue", None) else (),
            )
            found.append(await fn(service))

    code = run_async(main, args.backend)
    return found[0] if found and code == 0 else None


def _print(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def _list(args: argparse.Namespace) -> int:
    from relayna.dlq import Cursor, DLQQuery
    from relayna.errors import ContractError

    if not 1 <= args.limit <= 200:
        raise UsageError("--limit must be 1..200")
    try:
        query = DLQQuery(
            queue_name=args.queue,
            source_queue_name=args.source_queue,
            task_id=args.task_id,
            reason=args.reason,
            state=args.state,
        )
        cursor = Cursor.parse(args.cursor) if args.cursor else None
    except ContractError as exc:
        raise UsageError(str(exc)) from None
    page = _with_service(
        args, lambda svc: svc.list_messages(query, cursor=cursor, limit=args.limit)
    )
    if page is None:
        return 1
    if args.json:
        _print(page)
        return 0
    for item in page["items"]:
        print(
            f"{item['dead_lettered_at']}  {item['dlq_id'][:16]}  {item['state']:<13} "
            f"{item['queue_name']}  task={item['task_id']}  {item['reason']}"
            f"{'  ' + item['exception_type'] if item['exception_type'] else ''}"
        )
    if not page["items"]:
        print("relayna: no DLQ records", file=sys.stderr)
    if page["next_cursor"]:
        print(f"next page: --cursor {page['next_cursor']}", file=sys.stderr)
    return 0


def _check_id(dlq_id: str) -> None:
    from relayna.contracts import is_valid_identifier

    if not is_valid_identifier(dlq_id):
        raise UsageError(f"invalid DLQ id {dlq_id!r}")


def _show(args: argparse.Namespace) -> int:
    _check_id(args.dlq_id)
    detail = _with_service(args, lambda svc: svc.message_detail(args.dlq_id))
    if detail is None:
        print(f"relayna: no DLQ record {args.dlq_id}", file=sys.stderr)
        return 1
    if args.json:
        _print(detail)
        return 0
    for key in ("dlq_id", "state", "queue_name", "source_queue_name", "retry_queue_name",
                "task_id", "correlation_id", "reason", "exception_type", "exception_message",
                "retry_attempt", "max_retries", "dead_lettered_at", "replay_count",
                "replayed_at", "body_encoding"):  # fmt: skip
        print(f"{key:<18} {detail.get(key)}")
    latest = detail.get("latest_status")
    print(f"{'latest_status':<18} {latest.get('status') if latest else None}")
    if detail.get("unconfirmed_republish"):
        print(f"{'unconfirmed':<18} {detail['unconfirmed_republish']}")
    for warning in detail["diagnosis"]["replay"]["warnings"]:
        print(f"warning: {warning}")
    print("body:", json.dumps(detail["body"])[:2000])
    return 0


def _replay(args: argparse.Namespace) -> int:
    from relayna.errors import ContractError, DLQConflict

    _check_id(args.dlq_id)
    outcome: list[Any] = []

    async def replay(svc: Any) -> Any:
        try:
            return await svc.replay(
                args.dlq_id, force=args.force, direct=args.direct, target_queue=args.target_queue
            )
        except (DLQConflict, ContractError) as exc:
            outcome.append(exc)
            return None

    result = _with_service(args, replay, broker=True)
    if outcome:
        error = outcome[0]
        code = getattr(error, "code", "invalid")
        print(f"relayna: replay refused ({code}): {error}", file=sys.stderr)
        return 1
    if result is None:
        print(f"relayna: no DLQ record {args.dlq_id}", file=sys.stderr)
        return 1
    if args.json:
        _print(result.as_dict())
    else:
        print(
            f"replayed {result.dlq_id} to {result.target_queue_name} "
            f"(replay #{result.replay_count})"
        )
    return 0


def _import(args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= 200:
        raise UsageError("--limit must be 1..200")
    imported = _with_service(
        args, lambda svc: svc.import_broker_messages(args.queue, limit=args.limit), broker=True
    )
    if imported is None:
        return 1
    ids = list(imported.dlq_ids)
    if args.json:
        _print(ids)
    else:
        for dlq_id in ids:
            print(dlq_id)
        print(f"relayna: {len(ids)} message(s) of {args.queue} indexed", file=sys.stderr)
    return 0
