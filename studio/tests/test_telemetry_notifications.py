"""Failed-task notifications: two replicas on one store (memory and the real Redis), an
email API and a webhook receiver on loopback, services answering ``/failed-tasks``
in the documented shape (relayna's own failed-task routes are another issue's).

One replica sends; nothing is sent twice; a failed send keeps the batch; the
batch wait is decided by an injected clock; the webhook body is HMAC-signed.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from relayna.errors import ConfigurationError
from relayna.transport import open_store
from relayna_studio import StudioRuntime, StudioSettings, open_studio, studio_app
from relayna_studio._notify import Notifier
from relayna_studio._notify_render import verify
from studio_support import TableResolver, settings_for
from telemetry_servers import serve_on

pytestmark = pytest.mark.anyio

HOST = "127.0.0.2"
SECRET = "s3cret-for-tests"


class Receivers:
    def __init__(self) -> None:
        self.emails: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.hooks: list[tuple[dict[str, str], bytes]] = []
        self.fail_emails = 0
        self.delay = 0.0  # seconds each email/webhook request takes: a slow receiver
        self.during_email: Callable[[int], Awaitable[None]] | None = None
        self.failed: dict[str, list[dict[str, Any]]] = {}

    def app(self) -> Starlette:
        async def email(request: Request) -> Response:
            await anyio.sleep(self.delay)
            if self.during_email is not None:
                await self.during_email(len(self.emails))
            if self.fail_emails:
                self.fail_emails -= 1
                return JSONResponse({"detail": "smtp down"}, status_code=503)
            self.emails.append((dict(request.headers), orjson.loads(await request.body())))
            return JSONResponse({"queued": True}, status_code=202)

        async def hook(request: Request) -> Response:
            await anyio.sleep(self.delay)
            self.hooks.append((dict(request.headers), await request.body()))
            return Response(status_code=204)

        async def failed_tasks(request: Request) -> Response:
            items = self.failed.get(request.path_params["sid"], [])
            wanted = request.query_params.get("investigation_status")
            items = [i for i in items if wanted is None or i["investigation_status"] == wanted]
            limit = int(request.query_params.get("limit", "50"))
            start = int(request.query_params.get("cursor") or 0)
            nxt = str(start + limit) if start + limit < len(items) else None
            return JSONResponse({"items": items[start : start + limit], "next_cursor": nxt})

        return Starlette(routes=[
            Route("/email", email, methods=["POST"]),
            Route("/hook", hook, methods=["POST"]),
            Route("/svc/{sid}/failed-tasks", failed_tasks),
        ])  # fmt: skip


def failure(sid: str, n: int, **extra: Any) -> dict[str, Any]:
    return {"failure_id": f"{sid}-f{n}", "task_id": f"{sid}-t{n}", "service_name": sid.title(),
            "failed_at": f"2026-05-01T10:00:{n:02d}Z", "error_type": "RuntimeError",
            "error_message": f"boom {n}\nsecond line", "queue_name": "tasks",
            "investigation_status": "unreviewed", **extra}  # fmt: skip


@asynccontextmanager
async def replicas(
    store_url: str, port: int, count: int = 2, **overrides: Any
) -> AsyncIterator[list[StudioRuntime]]:
    config = {
        "failed_task_email_enabled": True,
        "failed_task_email_service_url": f"http://mail.test:{port}/email",
        "failed_task_email_api_key": "key-1",
        "failed_task_email_receivers": ("ops@example.test", "dev@example.test"),
        "failed_task_webhook_url": f"http://hook.test:{port}/hook",
        "failed_task_webhook_secret": SECRET,
        "allowed_hosts": (".test",),
        "allowed_networks": (f"{HOST}/32",),
        "failed_task_email_prefix": f"notify-test:{uuid.uuid4().hex[:8]}",
    }
    config.update(overrides)
    settings = settings_for(store_url, f"notify:{uuid.uuid4().hex[:8]}", **config)
    resolver = TableResolver({"mail.test": [HOST], "hook.test": [HOST], "svc.test": [HOST]})
    async with open_store(store_url) as store, AsyncExitStack() as stack:
        runtimes = [
            await stack.enter_async_context(open_studio(settings, store=store, resolver=resolver))
            for _ in range(count)
        ]
        yield runtimes


@asynccontextmanager
async def client_for(runtime: StudioRuntime) -> AsyncIterator[httpx.AsyncClient]:
    app = studio_app(runtime)
    app.state.studio_runtime = runtime
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as c:
        yield c


async def register(runtime: StudioRuntime, sid: str, port: int) -> None:
    async with client_for(runtime) as c:
        response = await c.post("/studio/services", json={
            "service_id": sid, "name": sid.title(), "environment": "test",
            "base_url": f"http://svc.test:{port}/svc/{sid}", "auth_mode": "internal_network"})  # fmt: skip
        assert response.status_code == 201, response.text


async def test_one_replica_sends_and_nothing_twice(store_url: str) -> None:
    receivers = Receivers()
    receivers.failed = {
        "alpha": [failure("alpha", 1), failure("alpha", 2)],
        "beta": [failure("beta", 3)],
    }
    receivers.failed["beta"].append(failure("beta", 4, investigation_status="investigated"))
    with anyio.fail_after(60):
        async with serve_on(receivers.app(), HOST) as port, replicas(store_url, port) as (r1, r2):
            await register(r1, "alpha", port)
            await register(r1, "beta", port)
            results: list[dict[str, int]] = []

            async def run(runtime: StudioRuntime) -> None:
                results.append(await Notifier(runtime).run_once())

            async with anyio.create_task_group() as tg:  # both replicas at once
                tg.start_soon(run, r1)
                tg.start_soon(run, r2)
            assert sorted(r["locked"] for r in results) == [0, 1]
            assert len(receivers.emails) == 3
            assert len(receivers.hooks) == 3
            titles = sorted(doc["title"] for _, doc in receivers.emails)
            assert titles == ["[Relayna] Failed task: Alpha / alpha-f1",
                              "[Relayna] Failed task: Alpha / alpha-f2",
                              "[Relayna] Failed task: Beta / beta-f3"]  # fmt: skip
            headers, doc = receivers.emails[0]
            assert headers["x-api-key"] == "key-1"
            assert doc["receivers"] == ["ops@example.test", "dev@example.test"]
            lines = doc["body"].splitlines()
            assert lines[0].startswith("Service: ")
            assert "Correlation ID: -" in lines
            assert any(
                line.startswith("Error Message: boom") and "second line" in line for line in lines
            )
            for headers, content in receivers.hooks:
                assert verify(SECRET, headers["x-relayna-timestamp"], headers["x-relayna-signature"],
                              content, now=float(headers["x-relayna-timestamp"]))  # fmt: skip
                assert not verify("wrong", headers["x-relayna-timestamp"],
                                  headers["x-relayna-signature"], content,
                                  now=float(headers["x-relayna-timestamp"]))  # fmt: skip
                body = orjson.loads(content)
                assert body["type"] == "relayna.failed_tasks"
                assert body["count"] == 1
                assert body["delivery_id"] == headers["x-relayna-delivery"]
            # again: nothing new, nothing sent
            assert (await Notifier(r2).run_once())["sent"] == 0
            assert len(receivers.emails) == 3
            assert len(receivers.hooks) == 3
            receivers.failed["alpha"].insert(0, failure("alpha", 9))
            assert (await Notifier(r1).run_once())["sent"] == 2  # email + webhook for the new one
            assert [d["title"] for _, d in receivers.emails[3:]] == [
                "[Relayna] Failed task: Alpha / alpha-f9"
            ]


async def test_a_run_longer_than_the_lock_sends_nothing_twice_and_loses_nothing(
    store_url: str,
) -> None:
    """A backlog on a slow receiver: the run takes several lock lifetimes.

    The lock lives 2 s (each send may take at most 0.5 s); every request takes
    0.1 s and there are 24 of them (12 items, 2 targets), so one run outlives the
    lock. The second replica tries all the time. Unless each send is
    recorded and the lock extended as the run goes, the lock expires mid-run,
    the second replica sends the same items again and the first one's
    bookkeeping is refused (so its items would be sent once more next run).
    """
    count = 12
    receivers = Receivers()
    receivers.failed = {"alpha": [failure("alpha", i) for i in range(1, count + 1)]}
    receivers.delay = 0.1
    with anyio.fail_after(60):
        async with (
            serve_on(receivers.app(), HOST) as port,
            replicas(store_url, port, failed_task_email_timeout_seconds=0.5) as (r1, r2),
        ):
            await register(r1, "alpha", port)
            expected = sorted(f"alpha-f{i}" for i in range(1, count + 1))
            outcomes: list[dict[str, int]] = []

            def delivered() -> tuple[list[str], list[str]]:
                emails = [doc["title"].rsplit(" / ", 1)[1] for _, doc in receivers.emails]
                hooks = [
                    orjson.loads(body)["items"][0]["failure_id"] for _, body in receivers.hooks
                ]
                return sorted(emails), sorted(hooks)

            async def replica(runtime: StudioRuntime) -> None:  # its timer, as fast as it goes
                notifier = Notifier(runtime, lock_seconds=2.0)
                while True:
                    outcome = await notifier.run_once()
                    outcomes.append(outcome)
                    idle = not (outcome["locked"] or outcome["sent"] or outcome["failed"])
                    got = delivered()
                    if idle and all(set(g) == set(expected) for g in got):
                        return
                    if any(len(g) > count for g in got):
                        return  # sent twice: the assertions below say what
                    await anyio.sleep(0.02)  # polling, as the job's interval does

            async with anyio.create_task_group() as tg:
                tg.start_soon(replica, r1)
                tg.start_soon(replica, r2)
            emails, hooks = delivered()
            assert emails == expected  # each exactly once: nothing twice, nothing lost
            assert hooks == expected
            assert any(o["locked"] for o in outcomes)  # the replicas really overlapped
            # one run outlived the lock: each request it made took at least 0.1 s
            assert max(o["sent"] + o["failed"] for o in outcomes) > 20


async def test_a_run_that_lost_its_lock_stops_and_keeps_what_it_recorded(store_url: str) -> None:
    """The process stalled past the lock's TTL during a send (the lock is gone when
    the receiver answers): the run records nothing more and sends nothing more; the
    next run repeats only that one send, with the same delivery id."""
    receivers = Receivers()
    receivers.failed = {"alpha": [failure("alpha", i) for i in range(1, 4)]}
    with anyio.fail_after(60):
        async with (
            serve_on(receivers.app(), HOST) as port,
            replicas(store_url, port) as (r1, r2),
        ):
            await register(r1, "alpha", port)
            first = Notifier(r1)

            async def expire_lock(already: int) -> None:
                if already == 1:  # during the second email
                    await r1.store.delete(f"{first.prefix}:batch:lock")

            receivers.during_email = expire_lock
            outcome = await first.run_once()
            assert (outcome["sent"], outcome["lost"]) == (3, 1)  # email+hook, email, then stop
            assert len(receivers.emails) == 2
            assert len(receivers.hooks) == 1
            receivers.during_email = None
            again = await Notifier(r2).run_once()
            assert (again["sent"], again["lost"]) == (4, 0)  # f2 email (repeat), f2 hook, f3 x2
            delivery = [h["x-relayna-delivery"] for h, _ in receivers.emails]
            titles = [d["title"].rsplit(" / ", 1)[1] for _, d in receivers.emails]
            assert titles == ["alpha-f1", "alpha-f2", "alpha-f2", "alpha-f3"]
            assert delivery[1] == delivery[2]  # the one repeat a receiver can drop
            hooks = [orjson.loads(b)["items"][0]["failure_id"] for _, b in receivers.hooks]
            assert hooks == ["alpha-f1", "alpha-f2", "alpha-f3"]
            assert (await Notifier(r1).run_once())["sent"] == 0


async def test_a_failed_send_keeps_the_batch_and_other_targets_are_not_repeated(
    store_url: str,
) -> None:
    receivers = Receivers()
    receivers.failed = {"alpha": [failure("alpha", i) for i in range(1, 4)]}
    clock = [1000.0]
    with anyio.fail_after(60):
        async with (
            serve_on(receivers.app(), HOST) as port,
            replicas(store_url, port, count=1, failed_task_email_batch_wait_seconds=60) as (r1,),
        ):
            await register(r1, "alpha", port)
            notifier = Notifier(r1, clock=lambda: clock[0])
            assert (await notifier.run_once())["queued"] == 3
            clock[0] = 1059.0
            assert (await notifier.run_once())["sent"] == 0
            assert receivers.emails == []
            assert receivers.hooks == []
            receivers.fail_emails = 1
            clock[0] = 1060.0
            outcome = await notifier.run_once()
            assert (outcome["sent"], outcome["failed"]) == (1, 1)  # the webhook went, the email not
            assert len(receivers.hooks) == 1
            assert (
                orjson.loads(receivers.hooks[0][1])["title"]
                == "[Relayna] Failed task: 3 failed tasks"
            )
            clock[0] = 1100.0  # the kept batch waits again from 1060
            assert (await notifier.run_once())["sent"] == 0
            clock[0] = 1120.0
            assert (await notifier.run_once())["sent"] == 1
            ((_, doc),) = receivers.emails
            assert doc["title"] == "[Relayna] Failed task: 3 failed tasks"
            assert doc["body"].count("\n---\n") == 2
            assert len(receivers.hooks) == 1  # the webhook already had them: not again
            clock[0] = 5000.0
            assert (await notifier.run_once())["sent"] == 0


async def test_settings_routes_and_startup_checks(store_url: str) -> None:
    receivers = Receivers()
    with anyio.fail_after(30):
        async with serve_on(receivers.app(), HOST) as port:
            async with replicas(store_url, port, count=1) as (runtime,):
                async with client_for(runtime) as c:
                    doc = (await c.get("/studio/failed-task-email-settings")).json()
                    assert doc["configured"] is True
                    assert doc["enabled"] is True
                    assert doc["targets"] == ["email", "webhook"]
                    assert doc["max_batch_wait_seconds"] == 604800
                    off = await c.patch("/studio/failed-task-email-settings",
                                        json={"enabled": False, "batch_wait_seconds": 30})  # fmt: skip
                    assert off.status_code == 200, off.text
                    assert (off.json()["enabled"], off.json()["batch_wait_seconds"]) == (False, 30)
                    receivers.failed = {"alpha": [failure("alpha", 1)]}
                    await register(runtime, "alpha", port)
                    assert (await Notifier(runtime).run_once())["scanned"] == 0  # disabled
                    with pytest.raises(ConfigurationError, match="must outlive one send"):
                        Notifier(runtime, lock_seconds=5.0)  # the send timeout is 5 s
                    for bad in ({"batch_wait_seconds": 604801}, {"batch_wait_seconds": -1},
                                {"enabled": "yes"}, {"colour": "red"}, {}, [1]):  # fmt: skip
                        response = await c.patch("/studio/failed-task-email-settings", json=bad)
                        assert response.status_code == 422, (bad, response.text)
            # receivers without a service URL and key: not configured, receivers hidden
            bare = settings_for(
                store_url,
                f"notify:{uuid.uuid4().hex[:8]}",
                failed_task_email_receivers=("ops@example.com",),
            )
            async with open_studio(bare) as runtime:
                async with client_for(runtime) as c:
                    doc = (await c.get("/studio/failed-task-email-settings")).json()
                    assert (doc["configured"], doc["enabled"], doc["receivers"]) == (
                        False,
                        False,
                        [],
                    )
                    on = await c.patch("/studio/failed-task-email-settings", json={"enabled": True})
                    assert on.status_code == 400
                    assert on.json()["code"] == "notifications_not_configured"
    with pytest.raises(ConfigurationError, match="SERVICE_URL"):
        StudioSettings(redis_url="memory://", failed_task_email_enabled=True)
    with pytest.raises(ConfigurationError, match="WEBHOOK"):
        StudioSettings(redis_url="memory://", failed_task_webhook_url="http://hook.test")
    refused = settings_for("memory://", "x", failed_task_webhook_url="http://127.0.0.1:9/hook",
                           failed_task_webhook_secret=SECRET)  # fmt: skip
    with pytest.raises(ConfigurationError, match="FAILED_TASK_WEBHOOK_URL"):
        async with open_studio(refused):
            pass
