"""``relayna cancel RUN_ID --workflow`` on RabbitMQ + Redis: a run whose stage is
running is cancelled from a terminal; an ended or unknown run exits 1."""

from __future__ import annotations

import json
import os
import sys

import anyio
import pytest

from _workflow_support import Cancellable, planner_docsearch, running, wait_for
from relayna.contracts import WorkflowEnvelope
from relayna.rabbitmq import open_relayna_client
from relayna.transport import open_broker, open_store
from relayna.workflow import WorkflowContext

pytestmark = [pytest.mark.anyio, pytest.mark.rabbitmq, pytest.mark.redis]

CODE = "import sys; from relayna.cli import main; sys.exit(main(sys.argv[1:]))"


async def test_relayna_cancel_workflow_cancels_a_running_run(
    unique: str, amqp_url: str, redis_url: str
) -> None:
    topology = planner_docsearch(unique)
    entered = anyio.Event()
    run_id = f"cli-{unique}"

    async def plan(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        entered.set()
        await anyio.sleep_forever()

    async def cli(*argv: str) -> tuple[int, str, str]:
        options = ["--prefix", stack.cancels.prefix, "--workflow-prefix", stack.state.prefix]
        done = await anyio.run_process(
            [sys.executable, "-c", CODE, "cancel", *argv, *options],
            env=dict(os.environ, RELAYNA_BROKER_URL=amqp_url, RELAYNA_STORE_URL=redis_url),
            check=False,
        )
        return done.returncode, done.stdout.decode(), done.stderr.decode()

    with anyio.fail_after(60):
        async with open_broker(amqp_url) as broker, open_store(redis_url) as store:
            stack = Cancellable(topology, broker, store)
            planner = stack.consumer("planner", plan)
            async with open_relayna_client(topology, broker) as client, running(planner):
                await client.publish_to_stage({"task_id": run_id}, "planner")
                await entered.wait()
                accepted = await cli(run_id, "--workflow", "--reason", "from ops", "--json")
                await wait_for(lambda: planner.stats.cancelled["running"] == 1)
                ended = await cli(run_id, "--workflow")
                unknown = await cli(f"nobody-{unique}", "--workflow")
                usage = await cli(run_id, "--workflow", "--batch")
            state = await stack.runs.get(run_id)
    assert accepted[0] == 0, accepted[2]
    assert json.loads(accepted[1]) == {
        "task_id": run_id,
        "state": "requested",
        "reason": "from ops",
        "status": None,
    }
    assert (ended[0], ended[2].strip()) == (1, f"relayna: task {run_id} already ended: cancelled")
    assert (unknown[0], unknown[2].strip()) == (1, f"relayna: no task nobody-{unique}")
    assert usage[0] == 2
    assert state is not None
    assert (state.status, state.cancel_reason) == ("cancelled", "from ops")
