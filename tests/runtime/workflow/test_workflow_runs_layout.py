"""``WorkflowRuns(store)`` without ``cancels=`` uses the cancellation keys of the
workflow store's layout: a run cancelled on a cluster-layout deployment marks
the keys the cluster-layout stage workers read."""

from __future__ import annotations

import anyio
import pytest

from _workflow_support import planner_docsearch
from relayna.rabbitmq import CancelStore
from relayna.transport import Store
from relayna.workflow import WorkflowRuns, WorkflowStoreConfig

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("cluster", [False, True])
async def test_default_cancels_follow_the_workflow_layout(
    store: Store, unique: str, cluster: bool
) -> None:
    config = WorkflowStoreConfig(prefix=f"wf{unique}", cluster=cluster)
    runs = WorkflowRuns(store, planner_docsearch(unique), config=config)
    workers = CancelStore(store, cluster=cluster)  # what the stage workers of that layout use
    assert runs.cancels.cluster is cluster
    assert runs.cancels.pending_key == workers.pending_key
    task_id = f"run-{unique}"
    with anyio.fail_after(10):
        await runs.cancels.request(task_id, "stop", require_known=False)
        assert task_id in await workers.pending_ids()
