"""``relayna.App``: tasks declared with a decorator, over the explicit API.

An :class:`App` is configuration plus a registry of task functions. It adds
no runtime of its own: :meth:`App.consumer` builds the same
:class:`~relayna.consumer.TaskConsumer` one would write by hand (one handler
per task type), :meth:`App.open` enters the same
:func:`~relayna.api.open_relayna_runtime` (store, broker, status hub) and
:func:`~relayna.rabbitmq.open_relayna_client`, and :meth:`App.asgi` is a
Starlette app with the status routes and that runtime as its lifespan.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from datetime import datetime
from typing import Any

import anyio
import attrs
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from relayna._groups import unwrap_groups
from relayna._urls import redact_url
from relayna.api import (
    Authorize,
    RelaynaRuntime,
    RuntimeConfig,
    open_relayna_runtime,
)
from relayna.app._handle import TaskHandle
from relayna.app._task import Task, TaskFunction
from relayna.app._web import build_routes
from relayna.consumer import LifecycleStatuses, RetryPolicy, TaskConsumer
from relayna.contracts import TaskEnvelope, is_valid_identifier
from relayna.dlq import DLQStoreConfig
from relayna.errors import ConfigurationError
from relayna.rabbitmq import (
    CancelResult,
    CancelStore,
    IfExists,
    RelaynaClient,
    TaskIds,
    open_relayna_client,
)
from relayna.status import StatusStoreConfig
from relayna.topology import RoutedTasksSharedStatusTopology, TaskTopologyBase
from relayna.transport import Broker, Store, is_cluster_store_url, open_failover_broker, open_store

__all__ = ["App", "Task"]

_DEFAULT_DLQ = DLQStoreConfig()


@attrs.define
class _Open:
    runtime: RelaynaRuntime
    client: RelaynaClient


def _env_url(variable: str) -> str:
    return os.environ.get(variable) or "memory://"


_YES, _NO = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def cluster_keys_from_env() -> bool:
    """``RELAYNA_STORE_CLUSTER_KEYS``: the Redis Cluster key layout (default off).

    Raises:
        ConfigurationError: a value that is neither yes (1/true/yes/on) nor no
            (0/false/no/off or empty).
    """
    value = os.environ.get("RELAYNA_STORE_CLUSTER_KEYS", "").strip().lower()
    if value in _YES or value in _NO:
        return value in _YES
    raise ConfigurationError(
        f"RELAYNA_STORE_CLUSTER_KEYS must be 1/true/yes/on or 0/false/no/off, got {value!r}"
    )


def replicas_from_env() -> tuple[int | None, float]:
    """``RELAYNA_STORE_REPLICA_ACKS`` and ``RELAYNA_STORE_REPLICA_WAIT``: replicas
    a store write must reach before the message it belongs to is acked (empty:
    1 on a Redis Cluster store, 0 elsewhere) and the seconds one wait may take
    (default 1).

    Raises:
        ConfigurationError: not a whole number >= 0 / not a number > 0.
    """
    acks = os.environ.get("RELAYNA_STORE_REPLICA_ACKS", "").strip()
    wait = os.environ.get("RELAYNA_STORE_REPLICA_WAIT", "").strip()
    try:
        parsed_acks = int(acks) if acks else None
        parsed_wait = float(wait) if wait else 1.0
    except ValueError:
        parsed_acks, parsed_wait = -1, 0.0
    if parsed_acks is not None and parsed_acks < 0:
        raise ConfigurationError(
            f"RELAYNA_STORE_REPLICA_ACKS must be a whole number >= 0, got {acks!r}"
        )
    if not parsed_wait > 0:  # NaN too
        raise ConfigurationError(
            f"RELAYNA_STORE_REPLICA_WAIT must be a number of seconds > 0, got {wait!r}"
        )
    return parsed_acks, parsed_wait


class App:
    """A relayna service: its topology, transports and task functions.

    ::

        app = relayna.App(name="reports")

        @app.task("report.render", retry=RetryPolicy(max_retries=2, delay_ms=5_000))
        async def render(ctx: TaskContext, payload: dict) -> dict:
            await ctx.publish_status(status="running", meta={"progress": 0.5})
            return {"pages": 3}

    ``relayna worker myservice:app`` consumes its tasks, ``relayna serve
    myservice:app`` serves its status routes (and, with ``--worker``, runs
    the worker in the same process); in code, ``async with app.open():
    handle = await render.publish({...})``.

    Args:
        topology: a task topology (shared or routed). ``None``: a routed
            topology named after ``name`` (``<name>.tasks`` exchange and queue,
            ``<name>.status`` stream) routing every registered task type.
        broker: a URL (``amqp://``, ``amqps://``, ``memory://``) or an open
            :class:`~relayna.transport.Broker`; default ``RELAYNA_BROKER_URL``,
            else ``memory://``.
        store: a URL (``redis://``, ``rediss://``, ``unix://``, ``memory://``)
            or an open :class:`~relayna.transport.Store`; default
            ``RELAYNA_STORE_URL``, else ``memory://``.
        name: the service name (topology names, consumer name, page title).
        retry: the retry policy of tasks that name none (``None``: no retries;
            a failure publishes ``failed`` and dead-letters the task).
        statuses: lifecycle statuses (default: all on).
        prefetch: concurrent tasks per worker (default: the topology's).
        drain_timeout: seconds in-flight tasks get on shutdown.
        store_config: status key prefix, history size, TTL and key layout
            (``cluster=True``: the Redis Cluster layout, which the app's
            feed, observations, DLQ, cancellation and task-id keys follow);
            default: ``StatusStoreConfig()`` with ``cluster`` from
            ``RELAYNA_STORE_CLUSTER_KEYS``.
        dlq_config: where the app's worker records dead letters in its store
            (``{prefix}:dlq:*``, see :doc:`dlq`) and where :meth:`routes`
            with ``dlq=True`` reads them; ``None`` records none.
        replica_acks: replicas of a Redis Cluster store that must hold the
            writes made for a message (DLQ record, idempotency mark, cancel
            claims, status batch) before it is acked; ``None``:
            ``RELAYNA_STORE_REPLICA_ACKS``, else 1 on a cluster store and 0
            elsewhere (see :doc:`redis-cluster`).
        replica_wait: seconds one wait may take (``None``:
            ``RELAYNA_STORE_REPLICA_WAIT``, else 1); a write not replicated
            in time is written again or its message left for redelivery.
        cancel_grace: seconds a cancelled task's ``ctx.cleanup_scope()`` may run.
        deadline_tolerance: seconds of clock skew forgiven before a task's
            deadline counts as passed.

    Raises:
        ConfigurationError: an invalid ``name``.
    """

    def __init__(
        self,
        topology: TaskTopologyBase | None = None,
        *,
        broker: Broker | str | None = None,
        store: Store | str | None = None,
        name: str = "relayna",
        retry: RetryPolicy | None = None,
        statuses: LifecycleStatuses | None = None,
        prefetch: int | None = None,
        drain_timeout: float = 30.0,
        store_config: StatusStoreConfig | None = None,
        dlq_config: DLQStoreConfig | None = _DEFAULT_DLQ,
        cancel_grace: float = 5.0,
        deadline_tolerance: float = 1.0,
        replica_acks: int | None = None,
        replica_wait: float | None = None,
    ) -> None:
        if not is_valid_identifier(name):
            raise ConfigurationError(f"invalid app name {name!r}")
        if topology is not None and not isinstance(topology, TaskTopologyBase):
            raise ConfigurationError(f"{type(topology).__name__} is not a task topology")
        self.name = name
        self.retry = retry
        self.statuses = statuses if statuses is not None else LifecycleStatuses(enabled=True)
        self.prefetch = prefetch
        self.drain_timeout = drain_timeout
        self.cancel_grace = cancel_grace
        self.deadline_tolerance = deadline_tolerance
        self.store_config = store_config or StatusStoreConfig(cluster=cluster_keys_from_env())
        #: the key layout was chosen (a store_config, or RELAYNA_STORE_CLUSTER_KEYS set):
        #: a cluster store URL then does not turn the cluster layout on by itself
        self._layout_chosen = store_config is not None or bool(
            os.environ.get("RELAYNA_STORE_CLUSTER_KEYS", "").strip()
        )
        self.dlq_config = dlq_config
        env_acks, env_wait = replicas_from_env()
        self.replica_acks = replica_acks if replica_acks is not None else env_acks
        self.replica_wait = replica_wait if replica_wait is not None else env_wait
        self._explicit_topology = topology
        self._broker: Broker | str = (
            broker if broker is not None else _env_url("RELAYNA_BROKER_URL")
        )
        self._store: Store | str = store if store is not None else _env_url("RELAYNA_STORE_URL")
        self._tasks: dict[str, Task] = {}
        self._frozen: TaskTopologyBase | None = None
        self._open: _Open | None = None

    def __repr__(self) -> str:
        return f"App(name={self.name!r}, tasks={list(self._tasks)!r})"

    # -- configuration ---------------------------------------------------------

    def _store_layout(self) -> StatusStoreConfig:
        """The store config with the key layout a Redis Cluster store needs: a
        cluster URL implies the cluster layout unless one was chosen; the
        default layout chosen for a cluster URL is a configuration error."""
        url = self._store if isinstance(self._store, str) else self._store.url
        if self.store_config.cluster or not is_cluster_store_url(url):
            return self.store_config
        if self._layout_chosen:
            raise ConfigurationError(
                f"app {self.name!r}: the store is a Redis Cluster ({redact_url(url)}) but the "
                "key layout is the default one; use StatusStoreConfig(cluster=True) or "
                "RELAYNA_STORE_CLUSTER_KEYS=1 (every script must touch one slot)"
            )
        return attrs.evolve(self.store_config, cluster=True)

    @property
    def broker_url(self) -> str | None:
        """The broker URL (``None`` when an open broker object was given)."""
        return self._broker if isinstance(self._broker, str) else None

    @property
    def store_url(self) -> str | None:
        """The store URL (``None`` when an open store object was given)."""
        return self._store if isinstance(self._store, str) else None

    def use(
        self,
        *,
        broker: Broker | str | None = None,
        store: Store | str | None = None,
        cluster_keys: bool | None = None,
    ) -> None:
        """Replace the broker and/or store (URL or open object) before the app is opened
        (``relayna serve --broker-url`` does this); ``cluster_keys`` chooses the
        key layout (``--cluster-keys``: as ``StatusStoreConfig(cluster=...)``).

        Raises:
            ConfigurationError: the app is open.
        """
        if self._open is not None:
            raise ConfigurationError(f"app {self.name!r} is open: its transports are in use")
        if broker is not None:
            self._broker = broker
        if store is not None:
            self._store = store
        if cluster_keys is not None:
            self.store_config = attrs.evolve(self.store_config, cluster=cluster_keys)
            self._layout_chosen = True

    @property
    def tasks(self) -> Mapping[str, Task]:
        """The registered tasks by task type (a read-only view)."""
        return dict(self._tasks)

    def task(
        self, task_type: str, *, retry: RetryPolicy | None = None
    ) -> Callable[[TaskFunction], Task]:
        """Register ``async def fn(ctx, payload)`` (or a plain ``def``) for ``task_type``.

        The function's return value becomes the ``result`` of the
        ``completed`` status; an exception is a failure (retried by
        ``retry``, or the app's policy, then dead-lettered with a ``failed``
        status). A plain ``def`` runs in a worker thread.

        Raises:
            ConfigurationError: an invalid or already registered task type,
                or registration after the app was opened.
        """
        if not is_valid_identifier(task_type):
            raise ConfigurationError(f"invalid task type {task_type!r}")
        if task_type in self._tasks:
            raise ConfigurationError(f"task type {task_type!r} is registered twice")
        if self._frozen is not None:
            raise ConfigurationError(
                f"cannot register {task_type!r}: the app's topology is already in use"
            )

        def register(fn: TaskFunction) -> Task:
            if not callable(fn):
                raise ConfigurationError(f"@app.task({task_type!r}) needs a function")
            task = Task(app=self, task_type=task_type, fn=fn, retry=retry)
            self._tasks[task_type] = task
            return task

        return register

    @property
    def topology(self) -> TaskTopologyBase:
        """The topology: the one given, or one built from the registered task types.

        Raises:
            TopologyError: no task registered (a built topology needs one).
        """
        if self._explicit_topology is not None:
            return self._explicit_topology
        if self._frozen is not None:
            return self._frozen
        return RoutedTasksSharedStatusTopology(
            tasks_exchange=f"{self.name}.tasks",
            tasks_queue=f"{self.name}.tasks",
            task_types=tuple(self._tasks),
            status_exchange=f"{self.name}.status",
            status_queue=f"{self.name}.status",
            prefetch_count=self.prefetch or 16,
        )

    def retry_policy(self) -> RetryPolicy | None:
        """The retry policy of the app's one tasks queue.

        The tasks share that queue, hence its ``.retry`` queue and its delay:
        the policies they name must be equal; a task naming none uses the
        app's ``retry``.

        Raises:
            ConfigurationError: two tasks name different policies.
        """
        named = {t.task_type: t.retry for t in self._tasks.values() if t.retry is not None}
        if len(set(named.values())) > 1:
            listed = "; ".join(f"{k}: {v!r}" for k, v in named.items())
            raise ConfigurationError(
                f"the tasks of queue {self.topology.tasks_queue!r} share one retry queue, so "
                f"their retry policies must be equal, got {listed}"
            )
        return next(iter(named.values())) if named else self.retry

    def _check_routed(self, topology: TaskTopologyBase) -> None:
        routed = getattr(topology, "task_types", None)
        if routed is None:
            return
        missing = sorted(set(self._tasks) - set(routed))
        if missing:
            raise ConfigurationError(
                f"the topology does not route task types {missing} (it routes {list(routed)}): "
                "add them to its task_types"
            )

    # -- worker ----------------------------------------------------------------

    def consumer(self, *, broker: Broker | str | None = None, **options: Any) -> TaskConsumer:
        """The :class:`~relayna.consumer.TaskConsumer` running this app's tasks.

        ``options`` override the app's settings (``retry_policy``,
        ``statuses``, ``prefetch``, ``consumer_name``, ``idempotency``, …).

        Raises:
            ConfigurationError: no task registered, a task type the topology
                does not route, or conflicting retry policies.
        """
        if not self._tasks:
            raise ConfigurationError(
                f"app {self.name!r} has no tasks: register one with @app.task('type')"
            )
        topology = self.topology
        self._check_routed(topology)
        settings: dict[str, Any] = {
            "topology": topology,
            "broker": broker if broker is not None else self._broker,
            "handler": {t.task_type: t.handler for t in self._tasks.values()},
            "retry_policy": self.retry_policy(),
            "statuses": self.statuses,
            "consumer_name": f"{self.name}-worker",
            "prefetch": self.prefetch,
            "drain_timeout": self.drain_timeout,
            "cancel_grace": self.cancel_grace,
            "deadline_tolerance": self.deadline_tolerance,
            "replica_acks": self.replica_acks,
            "replica_wait": self.replica_wait,
        }
        settings.update(options)
        return TaskConsumer(**settings)

    # -- running ---------------------------------------------------------------

    @asynccontextmanager
    async def open(
        self,
        *,
        worker: bool = False,
        hub: bool = True,
        shutdown_event: anyio.Event | None = None,
    ) -> AsyncIterator[App]:
        """Open the app: store, broker (topology declared), status hub, publisher.

        Args:
            worker: also consume the app's tasks in this process (needed with
                ``memory://``, which no other process can reach).
            hub: run the status hub (statuses reach the store, so that
                :class:`TaskHandle` and the routes see them).
            shutdown_event: set it to end every status stream (SSE) at once.

        Raises:
            ConfigurationError: already open; see :meth:`consumer`.
            TransportError: the broker or store cannot be opened.

        Cancellation: leaving the block drains the worker, then closes.
        """
        if self._open is not None:
            raise ConfigurationError(f"app {self.name!r} is already open")
        self.store_config = self._store_layout()
        topology = self.topology
        self._check_routed(topology)
        consumer = self.consumer() if worker else None
        with unwrap_groups():
            async with AsyncExitStack() as stack:
                broker = (
                    await stack.enter_async_context(open_failover_broker(self._broker))
                    if isinstance(self._broker, str)
                    else self._broker
                )
                store = (
                    await stack.enter_async_context(open_store(self._store))
                    if isinstance(self._store, str)
                    else self._store
                )
                config = RuntimeConfig(
                    store_url=store.url,
                    broker_url=broker.url,
                    topology=topology,
                    run_hub=hub,
                    store=self.store_config,
                    dlq=self.dlq_config,
                    replica_acks=self.replica_acks,
                    replica_wait=self.replica_wait,
                )
                runtime = await stack.enter_async_context(
                    open_relayna_runtime(
                        config, broker=broker, store=store, shutdown_event=shutdown_event
                    )
                )
                task_ids = TaskIds(  # publish(if_exists=...) claims ids in the store
                    store,
                    prefix=self.store_config.prefix,
                    ttl_seconds=self.store_config.ttl_seconds,
                    cluster=self.store_config.cluster,
                )
                cancels = CancelStore(
                    store, prefix=self.store_config.prefix, cluster=self.store_config.cluster
                )
                client = await stack.enter_async_context(
                    open_relayna_client(
                        topology, broker, declare=False, task_ids=task_ids, cancels=cancels
                    )
                )
                self._frozen = topology
                self._open = _Open(runtime=runtime, client=client)
                stack.callback(self._closed)
                if consumer is not None:
                    consumer.broker = broker
                    if consumer.dlq_recorder is None and runtime.dlq is not None:
                        consumer.dlq_recorder = runtime.dlq.store
                    if consumer.cancels is None:
                        consumer.cancels = cancels
                    tg = await stack.enter_async_context(anyio.create_task_group())
                    await tg.start(consumer.run)
                    stack.callback(tg.cancel_scope.cancel)  # runs first: drain the worker
                yield self

    def _closed(self) -> None:
        self._open = None
        if self._explicit_topology is None:
            self._frozen = None

    @property
    def runtime(self) -> RelaynaRuntime:
        """The open runtime (store, broker, hub).

        Raises:
            ConfigurationError: the app is not open.
        """
        return self._require_open().runtime

    @property
    def client(self) -> RelaynaClient:
        """The open app's publisher (``publish_batch``, ``publish_status``, ``cancel``, ...).

        Raises:
            ConfigurationError: the app is not open.
        """
        return self._require_open().client

    def _require_open(self) -> _Open:
        if self._open is None:
            raise ConfigurationError(
                f"app {self.name!r} is not open: publish inside `async with app.open():` "
                "or from a route of app.asgi()"
            )
        return self._open

    def handle(self, task: TaskEnvelope | str) -> TaskHandle:
        """A :class:`TaskHandle` for a task published earlier (by id or envelope)."""
        opened = self._require_open()
        if isinstance(task, str):
            task = TaskEnvelope(task_id=task, payload={})
        return TaskHandle(
            task,
            status_store=opened.runtime.status,
            shutdown=opened.runtime.shutdown_event,
            client=opened.client,
        )

    async def cancel(self, task_id: str, reason: str | None = None) -> CancelResult:
        """Cancel a task published earlier (queued, waiting for a retry, or running).

        Returns its :class:`~relayna.rabbitmq.CancelResult`: ``requested`` or
        ``pending`` (the task ends ``cancelled``: at once when a worker holds
        it, else when one takes it), ``terminal`` (it already ended; nothing
        changed) or ``unknown`` (no such task).

        Raises:
            ConfigurationError: the app is not open.
            ContractError: invalid id, or a reason over 500 characters.
        """
        return await self._require_open().client.cancel(task_id, reason)

    async def cancel_batch(self, batch_id: str, reason: str | None = None) -> CancelResult:
        """Cancel every task of a batch (published with ``client.publish_batch``)."""
        return await self._require_open().client.cancel(batch_id, reason, require_known=False)

    async def publish(
        self,
        task_type: str,
        payload: Mapping[str, Any] | None = None,
        *,
        task_id: str | None = None,
        correlation_id: str | None = None,
        priority: int | None = None,
        service: str | None = None,
        headers: Mapping[str, Any] | None = None,
        if_exists: IfExists = "run",
        deadline: datetime | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the task's time budget
    ) -> TaskHandle:
        """Publish a ``task_type`` task (returns after the broker confirm).

        ``task_id`` defaults to a new random id. ``if_exists`` says what a
        ``task_id`` that already exists (published before, or with statuses)
        does: ``"run"`` publishes it again (the default, as the original),
        ``"skip"`` publishes nothing and returns its handle, ``"error"``
        raises :class:`~relayna.errors.DuplicateTaskError`; the check and the
        claim are one store script. ``deadline`` (aware datetime) or
        ``timeout`` (seconds from now) gives the task an absolute deadline:
        not started after it, cancelled at it (``expired``).

        Raises:
            ConfigurationError: the app is not open, or an unknown ``if_exists``.
            DuplicateTaskError: ``if_exists="error"`` and the id exists.
            ContractError: invalid fields (identifiers, priority, size), a
                deadline that passed or a timeout outside ``0 < t <= 1 year``.
            TopologyError: the topology does not route ``task_type``.
            BrokerError: from the broker (e.g. ``UnroutableError``).
        """
        task: dict[str, Any] = {
            "task_id": task_id or uuid.uuid4().hex,
            "task_type": task_type,
            "payload": dict(payload or {}),
        }
        for key, value in (
            ("correlation_id", correlation_id),
            ("priority", priority),
            ("service", service),
        ):
            if value is not None:
                task[key] = value
        envelope = await self._publish_mapping(
            task, headers, if_exists=if_exists, deadline=deadline, timeout=timeout
        )
        return self.handle(envelope)

    async def _publish_mapping(
        self,
        task: dict[str, Any],
        headers: Mapping[str, Any] | None = None,
        *,
        if_exists: IfExists = "run",
        deadline: datetime | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the task's time budget
    ) -> TaskEnvelope:
        client = self._require_open().client
        return await client.publish_task(
            task, headers=headers, if_exists=if_exists, deadline=deadline, timeout=timeout
        )

    async def _publish_from_page(self, task: dict[str, Any]) -> TaskEnvelope:
        return await self._publish_mapping(task, if_exists="error")  # POST /tasks: 409

    # -- web -------------------------------------------------------------------

    def routes(
        self, *, page: bool = False, dlq: bool = False, authorize: Authorize | None = None
    ) -> list[BaseRoute]:
        """The Starlette routes: status (``/status``, ``/events``, ``/history``),
        ``POST /tasks/{task_id}/cancel`` and health (``/healthz``, ``/readyz``);
        with ``page``, also ``GET /`` (a page that submits tasks and follows
        them live) and ``POST /tasks`` (409 for a task id that exists); with
        ``dlq``, the DLQ and failed-task routes (``/dlq/*``, ``/failed-tasks/*``,
        see :doc:`dlq`) over the records the app's worker wrote.

        ``POST /tasks`` publishes whatever task a caller sends, and the DLQ
        routes replay and delete: serve them only where every caller may do
        that, or pass ``authorize(request, route_id)`` (None allows, a
        response refuses) for the DLQ routes' mutating calls and the cancel
        route.

        Raises:
            ConfigurationError: ``dlq=True`` for an app without ``dlq_config``.
        """
        return build_routes(
            self.name,
            self._tasks,
            self._publish_from_page,
            page=page,
            dlq_config=self.dlq_config,
            dlq=dlq,
            authorize=authorize,
        )

    def lifespan(
        self, *, worker: bool = False, shutdown_event: anyio.Event | None = None
    ) -> Callable[[Any], AbstractAsyncContextManager[dict[str, Any]]]:
        """A Starlette ``lifespan`` that keeps the app open (see :meth:`open`)."""

        @asynccontextmanager
        async def lifespan(_app: Any) -> AsyncIterator[dict[str, Any]]:
            async with self.open(worker=worker, shutdown_event=shutdown_event):
                yield {"relayna": self.runtime}

        return lifespan

    def asgi(
        self,
        *,
        page: bool = False,
        dlq: bool = False,
        authorize: Authorize | None = None,
        worker: bool = False,
        shutdown_event: anyio.Event | None = None,
    ) -> Starlette:
        """A Starlette app: :meth:`routes` with :meth:`lifespan`."""
        return Starlette(
            routes=self.routes(page=page, dlq=dlq, authorize=authorize),
            lifespan=self.lifespan(worker=worker, shutdown_event=shutdown_event),
        )
