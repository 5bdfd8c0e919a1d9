"""``resources/read``: a ``relayna://`` URI → (text, MIME type).

The URI grammar is small and fixed, so it is matched by splitting, not by a
general URI-template engine; every identifier segment passes the identifier
rule before any store is read.
"""

from __future__ import annotations

from typing import Any

import orjson

from relayna.api import RelaynaRuntime
from relayna.contracts import validate_identifier
from relayna.errors import ContractError
from relayna.mcp import _reads as reads
from relayna.mcp._catalog import JSON_MIME, MERMAID_MIME
from relayna.workflow import WorkflowStoreConfig

__all__ = ["parse_uri", "read_resource"]

_SCHEME = "relayna://"
_MAX_URI = 2048


def parse_uri(uri: str) -> tuple[str, str | None]:
    """``(kind, identifier)`` for a resource URI.

    Kinds: ``topology``, ``dlq.queues``, ``workers``, ``task.status``,
    ``task.history``, ``task.graph``, ``task.graph.mermaid``, ``dlq.message``,
    ``workflow.run``.

    Raises:
        ContractError: malformed URI or an identifier failing the rule.
        LookupError: no such resource.
    """
    if len(uri) > _MAX_URI or not uri.startswith(_SCHEME):
        raise ContractError("invalid resource URI", errors=[("uri", f"expected {_SCHEME}...")])
    parts = uri[len(_SCHEME) :].split("/")
    fixed = {("topology",): "topology", ("dlq", "queues"): "dlq.queues", ("workers",): "workers"}
    if tuple(parts) in fixed:
        return fixed[tuple(parts)], None
    if len(parts) == 3 and parts[0] == "tasks":
        kind = {
            "status": "task.status",
            "history": "task.history",
            "graph": "task.graph",
            "graph.mermaid": "task.graph.mermaid",
        }.get(parts[2])
        if kind is not None:
            return kind, _identifier(parts[1], "task_id")
    if len(parts) == 3 and parts[:2] == ["dlq", "messages"]:
        return "dlq.message", _identifier(parts[2], "dlq_id")
    if len(parts) == 3 and parts[:2] == ["workflow", "runs"]:
        return "workflow.run", _identifier(parts[2], "task_id")
    raise LookupError(f"no resource {uri!r}")


def _identifier(value: str, name: str) -> str:
    try:
        validate_identifier(value)
    except ContractError as exc:
        raise ContractError(f"invalid {name}", errors=[(name, str(exc))]) from None
    return value


def _json(data: Any) -> tuple[str, str]:
    return orjson.dumps(data).decode(), JSON_MIME


async def read_resource(
    runtime: RelaynaRuntime, uri: str, *, workflow: WorkflowStoreConfig | None = None
) -> tuple[str, str]:
    """The resource's text and MIME type (LookupError when it does not exist).

    ``workflow``: the stage workers' key prefix (``relayna://workflow/runs/...``).
    """
    kind, ident = parse_uri(uri)
    if kind == "topology":
        return _json(reads.topology(runtime))
    if kind == "dlq.queues":
        return _json(await reads.dlq_queues(runtime))
    if kind == "workers":
        return _json(await reads.workers(runtime))
    assert ident is not None
    if kind == "task.status":
        return _json(await reads.status(runtime, ident))
    if kind == "task.history":
        return _json(await reads.history(runtime, ident))
    if kind == "workflow.run":
        run = await reads.workflow_runs(runtime, workflow).describe(ident)
        if run is None:
            raise LookupError(f"no workflow run for task {ident!r}")
        return _json(run)
    if kind == "dlq.message":
        detail = await reads.dlq_message(runtime, ident)
        if detail is None:
            raise LookupError(f"no DLQ record {ident!r}")
        return _json(detail)
    fmt = "mermaid" if kind == "task.graph.mermaid" else "json"
    graph = await reads.graph(runtime, ident, fmt=fmt)
    if not graph["found"]:
        raise LookupError(f"no execution data for task {ident!r}")
    return (graph["mermaid"], MERMAID_MIME) if fmt == "mermaid" else _json(graph["graph"])
