"""A fan-in of 3 branches on 3 worker processes, with duplicate deliveries and one
SIGKILL mid-join, on the real RabbitMQ + Redis: the join's effect happens
exactly once, with the 3 branch payloads.

Each worker process runs the branch stages and the join
(``_workflow_worker``). Every branch hands off twice (the same message id),
and the test publishes one more copy of every branch's hand-off, so the join
sees 9 deliveries of 3 branches, spread over the processes. The first join
call anywhere stops before its effect and the test SIGKILLs that process: its
delivery returns to the queue, another process finds the join claimed by a
dead worker, waits for the guard to expire, claims the join and runs it. The
effect counter (a Redis list the handler appends to at its end) must hold one
entry, also after a branch copy published once the join completed was taken.
"""

from __future__ import annotations

import json
import signal
import sys

import anyio
import pytest
from _harness import Worker, stop_workers, wait_for, worker_env
from _workflow_worker import BRANCHES, ledger, make_topology, state_config

from relayna.contracts import WorkflowEnvelope
from relayna.rabbitmq import open_relayna_client
from relayna.transport import open_broker, open_store
from relayna.workflow import WorkflowRuns, derive_message_id

pytestmark = [pytest.mark.anyio, pytest.mark.rabbitmq, pytest.mark.redis]


def start(env: dict[str, str]) -> Worker:
    return Worker([sys.executable, "-m", "_workflow_worker"], env)


@pytest.mark.timeout(120)
async def test_a_join_on_three_processes_runs_once_through_duplicates_and_a_sigkill(
    amqp_url: str, redis_url: str, unique: str, anyio_backend: str
) -> None:
    topology = make_topology(unique)
    keys = ledger(unique)
    env = worker_env(unique=unique, amqp_url=amqp_url, redis_url=redis_url, backend=anyio_backend)
    workers: list[Worker] = []
    try:
        async with open_broker(amqp_url) as broker, open_store(redis_url) as store:
            runs = WorkflowRuns(store, topology, config=state_config(unique))
            with anyio.fail_after(90):
                async with open_relayna_client(topology, broker) as client:
                    workers.extend(start(env) for _ in range(3))
                    for worker in workers:
                        await worker.wait_ready()
                    origins = [
                        WorkflowEnvelope(task_id="fan-1", stage=b, payload={"n": i})
                        for i, b in enumerate(BRANCHES)
                    ]
                    for message in origins:
                        await client.publish_to_stage(message, message.stage)
                    # one more copy of every branch's hand-off (the id its handler derives)
                    for message in origins:
                        await client.publish_to_stage(
                            WorkflowEnvelope(
                                task_id="fan-1",
                                stage="join",
                                message_id=derive_message_id(message.message_id, "join", 0),
                                origin_stage=message.stage,
                                parent_message_id=message.message_id,
                                payload={"from": message.stage, **message.payload},
                            ),
                            "join",
                        )

                    async def stuck() -> bool:
                        return await store.get(f"{keys}:stuck") is not None

                    await wait_for(stuck, 30, "the first join call")
                    victim_pid = int((await store.get(f"{keys}:stuck") or b"0").decode())
                    victim = next(w for w in workers if w.pid == victim_pid)
                    victim.kill()  # SIGKILL mid-join
                    assert victim.proc.returncode == -signal.SIGKILL

                    async def joined() -> bool:
                        return await store.llen(f"{keys}:effects") >= 1

                    async def describe() -> str:
                        run = await runs.get("fan-1")
                        logs = "\n".join(f"--- {w.pid}\n{w.text()[-1500:]}" for w in workers)
                        return f"run={run}\n{logs}"

                    await wait_for(joined, 40, "the join's effect", describe=describe)
                    # a late copy after the join completed: recorded, never joined
                    late = WorkflowEnvelope(
                        task_id="fan-1", stage="join", origin_stage="b1", payload={"late": 1}
                    )
                    await client.publish_to_stage(late, "join")

                    async def late_seen() -> bool:
                        run = await runs.get("fan-1")
                        seen = {m.message_id for m in run.messages} if run is not None else set()
                        return late.message_id in seen

                    await wait_for(late_seen, 20, "the late copy", describe=describe)
                    survivors = [w for w in workers if w is not victim]
                    codes = await stop_workers(survivors)  # drained: all settled
                    effects = [json.loads(e) for e in await store.lrange(f"{keys}:effects", 0, -1)]
                    final = await runs.get("fan-1")
    finally:
        for worker in workers:
            worker.cleanup()
    assert len(effects) == 1, effects
    assert effects[0]["branches"] == list(BRANCHES)
    assert effects[0]["payloads"] == [
        json.dumps({"from": b, "n": i}, sort_keys=True) for i, b in enumerate(BRANCHES)
    ]
    assert effects[0]["pid"] != victim_pid
    assert codes == [0, 0]
    assert final is not None
    assert final.terminal
    join = final.stages["join"]
    assert join.status == "completed"
    assert join.attempts == 2  # the killed call and the one that completed
    assert join.fan_in is not None
    assert sorted(join.fan_in.branches) == list(BRANCHES)
