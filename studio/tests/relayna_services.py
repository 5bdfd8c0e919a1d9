"""Real relayna services for Studio's federation tests, in-process on loopback.

:func:`relayna_service` serves relayna's own routes (no test-side stand-ins):
``status_routes``, ``execution_routes``, ``feed_routes``, ``dlq_routes``
(with the failed-task routes), ``workflow_routes`` when given a workflow
topology, and ``capabilities_routes`` (computed from what is mounted), on a
relayna runtime over the given store (memory or the real Redis) and the
memory broker. Every key family has a prefix of its own, so services and
test runs sharing one Redis never see each other's records.
"""

from __future__ import annotations

import importlib.util
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs
from starlette.applications import Starlette

from relayna.api import (
    DLQ_CAPABILITY_ROUTE_IDS,
    FAILED_TASKS_CAPABILITY_ROUTE_IDS,
    WORKFLOW_CAPABILITY_ROUTE_IDS,
    RelaynaRuntime,
    RuntimeConfig,
    capabilities_routes,
    dlq_routes,
    execution_routes,
    feed_routes,
    open_relayna_runtime,
    serving,
    status_routes,
    workflow_routes,
)
from relayna.consumer import DLQRecord
from relayna.contracts import ContractAliasConfig
from relayna.dlq import DLQStore, DLQStoreConfig
from relayna.observability import ObservationStoreConfig, ServiceEventFeedConfig
from relayna.status import StatusStoreConfig
from relayna.topology import SharedStatusWorkflowTopology
from relayna.workflow import WorkflowStoreConfig

# relayna's DLQ test records (tests/ is not on this suite's path)
_SPEC = importlib.util.spec_from_file_location(
    "_dlq_records", Path(__file__).resolve().parents[2] / "tests/_dlq_records.py"
)
assert _SPEC is not None
assert _SPEC.loader is not None
_records = sys.modules.setdefault("_dlq_records", importlib.util.module_from_spec(_SPEC))
_SPEC.loader.exec_module(_records)

__all__ = ["HOST", "RelaynaService", "bind", "dlq_record", "relayna_service"]

HOST = "127.0.0.2"


def bind(host: str = HOST) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(64)
    return sock


@attrs.frozen
class RelaynaService:
    port: int
    runtime: RelaynaRuntime
    dlq: DLQStore
    workflow_state: WorkflowStoreConfig


def dlq_record(task_id: str, dead_lettered_at: datetime) -> DLQRecord:
    """``task_id`` dead-lettered from ``orders`` at ``dead_lettered_at`` (relayna's
    test records, ``tests/_dlq_records.py``)."""
    body = b'{"task_id": "%s", "payload": {}}' % task_id.encode()
    record: DLQRecord = _records.dlq_record(
        0, task_id=task_id, correlation_id=None, dead_lettered_at=dead_lettered_at, body=body
    )
    return record


@asynccontextmanager
async def relayna_service(
    store_url: str,
    *,
    aliases: ContractAliasConfig | None = None,
    topology: SharedStatusWorkflowTopology | None = None,
    title: str = "relayna",
) -> AsyncIterator[RelaynaService]:
    """A relayna app with relayna's routes on ``HOST``, open until the block ends."""
    prefix = f"fedsvc-{uuid.uuid4().hex[:10]}"
    dlq = DLQStoreConfig(prefix=f"{prefix}-dlq")
    state = WorkflowStoreConfig(prefix=f"{prefix}-wf")
    config = RuntimeConfig(
        store_url=store_url,
        broker_url="memory://",
        topology=topology,
        run_hub=False,
        store=StatusStoreConfig(prefix=prefix),
        observations=ObservationStoreConfig(prefix=f"{prefix}-obs"),
        feed=ServiceEventFeedConfig(prefix=f"{prefix}-feed"),
        dlq=dlq,
        service_title=title,
    )
    async with open_relayna_runtime(config) as runtime:
        routes = [
            *status_routes(aliases=aliases, keepalive=1.0),
            *execution_routes(aliases=aliases),
            *feed_routes(),
            *dlq_routes(store_config=dlq, aliases=aliases, service_id=title),
        ]
        if topology is not None:
            routes += workflow_routes(state=state, aliases=aliases)
        routes += capabilities_routes(
            aliases=aliases,
            extra_route_ids=(
                *DLQ_CAPABILITY_ROUTE_IDS,
                *FAILED_TASKS_CAPABILITY_ROUTE_IDS,
                *WORKFLOW_CAPABILITY_ROUTE_IDS,
            ),
        )

        @asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
            yield {"relayna": runtime}

        sock = bind()
        port = int(sock.getsockname()[1])
        app = Starlette(routes=routes, lifespan=lifespan)
        async with serving(app, sock=sock, graceful_timeout=0.5):
            try:
                yield RelaynaService(port, runtime, DLQStore(runtime.store, dlq), state)
            finally:
                runtime.request_shutdown()
