"""Task topologies: one direct tasks exchange and queue + the shared status stream."""

from __future__ import annotations

from typing import Any

import attrs

from relayna.errors import TopologyError
from relayna.topology._arguments import (
    check_quorum_arguments,
    merge_queue_arguments,
    queue_builtin_arguments,
)
from relayna.topology._plan import DeclarationPlan
from relayna.topology._status import StatusTopologyBase, copy_table, require_id
from relayna.transport import BindingSpec, ExchangeSpec, QueueSpec

__all__ = [
    "RoutedTasksSharedStatusTopology",
    "SharedTasksSharedStatusTopology",
    "TaskTopologyBase",
]


def _str_tuple(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(value)


@attrs.frozen(kw_only=True, slots=False)
class TaskTopologyBase(StatusTopologyBase):
    """Durable **direct** tasks exchange + durable tasks queue.

    Task queue arguments: ``tasks_message_ttl_ms`` → ``x-message-ttl``;
    ``dead_letter_exchange`` → ``x-dead-letter-exchange``;
    ``task_consumer_timeout_ms`` → ``x-consumer-timeout``;
    ``task_single_active_consumer`` → ``x-single-active-consumer``;
    ``task_max_priority`` → ``x-max-priority`` (1..255); ``task_queue_type``
    → ``x-queue-type`` (``classic``, ``quorum`` or ``stream``), merged with
    ``task_queue_arguments_overrides`` and ``task_queue_kwargs``.
    """

    tasks_exchange: str
    tasks_queue: str
    tasks_message_ttl_ms: int | None = None
    task_consumer_timeout_ms: int | None = None
    task_single_active_consumer: bool | None = None
    task_max_priority: int | None = None
    task_queue_type: str | None = None
    task_queue_arguments_overrides: dict[str, Any] = attrs.field(factory=dict, converter=copy_table)
    task_queue_kwargs: dict[str, Any] = attrs.field(factory=dict, converter=copy_table)

    def _field_problems(self) -> list[str]:
        problems = super()._field_problems()
        if not self.tasks_exchange.strip():
            problems.append("tasks_exchange must not be empty")
        if not self.tasks_queue.strip():
            problems.append("tasks_queue must not be empty")
        if self.tasks_queue == self.status_queue:
            problems.append(
                f"duplicate queue name {self.tasks_queue!r} (tasks_queue and status_queue)"
            )
        names = [self.tasks_exchange, self.status_exchange, self.dead_letter_exchange]
        if len({n for n in names if n}) != len([n for n in names if n]):
            problems.append(
                "tasks_exchange, status_exchange and dead_letter_exchange must be distinct, "
                f"got {names!r}"
            )
        try:
            self.task_queue_arguments()
        except TopologyError as exc:
            problems.extend(exc.problems)
        return problems

    def _static_queue_names(self) -> tuple[str, ...]:
        return (self.status_queue, self.tasks_queue)

    def task_queue_arguments(self) -> dict[str, Any]:
        """Arguments of the tasks queue (conflicting keys raise :class:`TopologyError`)."""
        builtins = queue_builtin_arguments(
            "task",
            message_ttl_ms=self.tasks_message_ttl_ms,
            dead_letter_exchange=self.dead_letter_exchange,
            consumer_timeout_ms=self.task_consumer_timeout_ms,
            single_active_consumer=self.task_single_active_consumer,
            max_priority=self.task_max_priority,
            queue_type=self.task_queue_type,
        )
        merged = merge_queue_arguments(
            "task",
            ("built-in fields", builtins),
            (
                "work_queue_type",
                self.work_queue_arguments("task", dead_letters=bool(self.dead_letter_exchange)),
            ),
            ("task_queue_arguments_overrides", self.task_queue_arguments_overrides),
            ("task_queue_kwargs", self.task_queue_kwargs),
        )
        check_quorum_arguments("task", merged)
        return merged

    def task_binding_keys(self) -> tuple[str, ...]:
        raise NotImplementedError

    def task_routing_key(
        self, task_type: str | None = None, task_id: str | None = None, *, known_only: bool = True
    ) -> str:
        raise NotImplementedError

    def plan(self) -> DeclarationPlan:
        """DLX (fanout), tasks (direct), status (topic); status queue, tasks queue; bindings."""
        status_queue, status_bindings = self._status_declarations()
        return DeclarationPlan(
            exchanges=(
                *self._dead_letter_exchanges(),
                ExchangeSpec(self.tasks_exchange, "direct", durable=True),
                self._status_exchange_spec(),
            ),
            queues=(
                status_queue,
                QueueSpec(self.tasks_queue, durable=True, arguments=self.task_queue_arguments()),
            ),
            bindings=(
                *status_bindings,
                *(
                    BindingSpec(self.tasks_queue, self.tasks_exchange, key)
                    for key in self.task_binding_keys()
                ),
            ),
        )


@attrs.frozen(kw_only=True, slots=False)
class SharedTasksSharedStatusTopology(TaskTopologyBase):
    """All tasks on one routing key (``tasks_routing_key``); statuses keyed by task id.

    Unlike the original there is no ``rabbitmq_url`` field: the URL is given to
    the client (``open_broker(url)``), so one topology value describes the
    RabbitMQ objects independently of where they live.
    """

    tasks_routing_key: str

    def task_binding_keys(self) -> tuple[str, ...]:
        return (self.tasks_routing_key,)

    def task_routing_key(
        self, task_type: str | None = None, task_id: str | None = None, *, known_only: bool = True
    ) -> str:
        """Always ``tasks_routing_key``; ``task_type`` and ``task_id`` are ignored."""
        del task_type, task_id, known_only
        return self.tasks_routing_key


@attrs.frozen(kw_only=True, slots=False)
class RoutedTasksSharedStatusTopology(TaskTopologyBase):
    """Tasks routed by ``task_type``: the tasks queue is bound once per task type.

    ``task_types`` are stripped and de-duplicated (order kept); at least one
    is required and blank entries are an error.
    """

    task_types: tuple[str, ...] = attrs.field(converter=_str_tuple)

    def _field_problems(self) -> list[str]:
        problems = super()._field_problems()
        if not self.task_types:
            problems.append("at least one task_type must be configured")
        if any(not str(t).strip() for t in self.task_types):
            problems.append(f"task_types must not contain blank entries, got {self.task_types!r}")
        return problems

    def task_binding_keys(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t.strip() for t in self.task_types if t.strip()))

    def task_routing_key(
        self, task_type: str | None = None, task_id: str | None = None, *, known_only: bool = True
    ) -> str:
        """The task's ``task_type``.

        ``known_only=False`` routes a type this topology does not bind (another
        service's queue bound to the same tasks exchange); the mandatory
        publish then tells whether anything binds it.

        Raises:
            ContractError: ``task_type`` missing or blank.
            TopologyError: ``known_only`` and ``task_type`` is not one of
                ``task_types`` (the publish would be unroutable).
        """
        del task_id
        key = require_id(task_type, "task_type").strip()
        if known_only and key not in self.task_binding_keys():
            raise TopologyError(
                f"task_type {key!r} is not routed by this topology "
                f"(known: {', '.join(self.task_binding_keys())})"
            )
        return key
