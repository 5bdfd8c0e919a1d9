"""What every topology shares: the status exchange and queue, the DLX, prefetch.

Theory of operation: a topology is a frozen attrs value. Its
``__attrs_post_init__`` runs :meth:`problems` (which subclasses extend
cooperatively through ``super()``) and raises one :class:`TopologyError`
listing everything wrong, so an inconsistent topology never exists.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from relayna.errors import ContractError, TopologyError
from relayna.topology._arguments import (
    merge_queue_arguments,
    status_builtin_arguments,
    validate_stream_offset,
    work_queue_arguments,
)
from relayna.topology._plan import DeclarationPlan, retry_plan
from relayna.transport import BindingSpec, ExchangeSpec, QueueSpec, StreamOffset

__all__ = ["StatusTopologyBase", "copy_table", "require_id"]


def copy_table(value: Mapping[str, Any] | None) -> dict[str, Any]:
    """Converter for argument-table fields: a private copy of the caller's mapping."""
    return dict(value or {})


def require_id(value: str | None, field: str) -> str:
    """``value`` if it is a non-blank string, else :class:`ContractError`."""
    if value is None or not str(value).strip():
        raise ContractError(f"{field} is required for routing", errors=[(field, "required")])
    return str(value)


@attrs.frozen(kw_only=True, slots=False)
class StatusTopologyBase:
    """Status exchange (topic) + status queue (a stream by default) + optional DLX.

    The status queue is bound with ``#``: it receives every status message,
    aggregation messages included. As a stream (``status_use_streams=True``)
    every API replica's status hub reads every event from its own offset
    (``status_stream_initial_offset``, default ``"last"``); on a cluster
    ``status_stream_initial_cluster_size`` → ``x-initial-cluster-size``.

    ``work_queue_type`` (``"classic"``, the default, or ``"quorum"``) is the type
    of the work queues: task, retry, dead-letter and workflow stage queues;
    ``delivery_limit`` → ``x-delivery-limit`` (quorum only). A queue's type
    cannot change in place: switching an existing deployment means new queue
    names or draining and deleting the old queues (see docs/cluster.md).
    """

    status_exchange: str
    status_queue: str
    dead_letter_exchange: str | None = None
    prefetch_count: int = 1
    status_use_streams: bool = True
    status_queue_ttl_ms: int | None = None
    status_stream_max_length_gb: int | None = None
    status_stream_max_segment_size_mb: int | None = None
    status_stream_max_age: str | None = None
    status_stream_initial_offset: StreamOffset = "last"
    status_stream_initial_cluster_size: int | None = None
    work_queue_type: str = "classic"
    delivery_limit: int | None = None
    status_queue_arguments_overrides: dict[str, Any] = attrs.field(
        factory=dict, converter=copy_table
    )
    status_queue_kwargs: dict[str, Any] = attrs.field(factory=dict, converter=copy_table)

    def __attrs_post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise TopologyError(f"invalid {type(self).__name__}: {problems[0]}", problems=problems)

    # -- validation ----------------------------------------------------------

    def problems(self) -> list[str]:
        """Every inconsistency of this topology (empty when valid)."""
        problems = self._field_problems()
        if not problems:
            _collect(problems, self.plan)
        return problems

    def _field_problems(self) -> list[str]:
        problems: list[str] = []
        if not self.status_exchange.strip():
            problems.append("status_exchange must not be empty")
        if not self.status_queue.strip():
            problems.append("status_queue must not be empty")
        if self.dead_letter_exchange is not None and not self.dead_letter_exchange.strip():
            problems.append("dead_letter_exchange must be None or a non-empty name")
        if (
            isinstance(self.prefetch_count, bool)
            or not isinstance(self.prefetch_count, int)
            or self.prefetch_count < 1
        ):
            problems.append(f"prefetch_count must be >= 1, got {self.prefetch_count!r}")
        try:
            validate_stream_offset(
                self.status_stream_initial_offset, label="status_stream_initial_offset"
            )
        except TopologyError as exc:
            problems.append(str(exc))
        _collect(problems, self.status_queue_arguments)
        _collect(problems, lambda: self.work_queue_arguments("task", dead_letters=False))
        return problems

    def work_queue_arguments(
        self, family: str, *, dead_letters: bool, consumed: bool = True
    ) -> dict[str, Any]:
        """The ``work_queue_type`` / ``delivery_limit`` arguments of one work queue.

        ``consumed=False`` (retry and dead-letter queues) leaves the delivery
        limit out: a retry queue is never consumed, and every ``peek`` of a
        DLQ returns its messages, which a quorum queue counts as deliveries
        (a DLQ with a limit would drop what an operator looked at too often).
        """
        return work_queue_arguments(
            family,
            work_queue_type=self.work_queue_type,
            delivery_limit=self.delivery_limit if consumed else None,
            dead_letters=dead_letters,
        )

    # -- status queue --------------------------------------------------------

    def status_queue_arguments(self) -> dict[str, Any]:
        """Built-in status arguments merged with overrides and kwargs (conflicts raise)."""
        builtins = status_builtin_arguments(
            use_streams=self.status_use_streams,
            queue_ttl_ms=self.status_queue_ttl_ms,
            stream_max_length_gb=self.status_stream_max_length_gb,
            stream_max_segment_size_mb=self.status_stream_max_segment_size_mb,
            stream_max_age=self.status_stream_max_age,
            stream_initial_cluster_size=self.status_stream_initial_cluster_size,
        )
        return merge_queue_arguments(
            "status",
            ("built-in fields", builtins),
            ("status_queue_arguments_overrides", self.status_queue_arguments_overrides),
            ("status_queue_kwargs", self.status_queue_kwargs),
        )

    @property
    def status_consume_offset(self) -> StreamOffset | None:
        """Where a status hub starts reading the stream; ``None`` when not a stream."""
        return self.status_stream_initial_offset if self.status_use_streams else None

    def status_stream_consume_arguments(self) -> dict[str, Any]:
        """``{"x-stream-offset": offset}`` for a stream status queue, else ``{}``."""
        offset = self.status_consume_offset
        return {} if offset is None else {"x-stream-offset": offset}

    def status_binding_keys(self) -> tuple[str, ...]:
        return ("#",)

    def status_routing_key(self, task_id: str | None) -> str:
        """Status events are routed by ``task_id``.

        Raises:
            ContractError: ``task_id`` is missing or blank.
        """
        return require_id(task_id, "task_id")

    # -- declarations --------------------------------------------------------

    def _dead_letter_exchanges(self) -> tuple[ExchangeSpec, ...]:
        if not self.dead_letter_exchange:
            return ()
        return (ExchangeSpec(self.dead_letter_exchange, "fanout", durable=True),)

    def _status_exchange_spec(self) -> ExchangeSpec:
        return ExchangeSpec(self.status_exchange, "topic", durable=True)

    def _status_declarations(self) -> tuple[QueueSpec, tuple[BindingSpec, ...]]:
        queue = QueueSpec(self.status_queue, durable=True, arguments=self.status_queue_arguments())
        bindings = tuple(
            BindingSpec(self.status_queue, self.status_exchange, key)
            for key in self.status_binding_keys()
        )
        return queue, bindings

    def plan(self) -> DeclarationPlan:
        """Everything declared at client start: exchanges (DLX first), queues, bindings."""
        queue, bindings = self._status_declarations()
        return DeclarationPlan(
            exchanges=(*self._dead_letter_exchanges(), self._status_exchange_spec()),
            queues=(queue,),
            bindings=bindings,
        )

    def retry_plan(
        self,
        source_queue: str,
        delay_ms: int,
        *,
        retry_suffix: str = ".retry",
        dlq_suffix: str = ".dlq",
    ) -> DeclarationPlan:
        """Retry (``<queue>.retry``) and dead-letter (``<queue>.dlq``) queues.

        See :func:`relayna.topology.retry_plan`. Raises :class:`TopologyError`
        for bad input, or when ``source_queue`` is the status queue (streams
        are never retried).
        """
        if source_queue == self.status_queue:
            raise TopologyError(f"the status queue {source_queue!r} has no retry infrastructure")
        return retry_plan(
            source_queue,
            delay_ms,
            retry_suffix=retry_suffix,
            dlq_suffix=dlq_suffix,
            retry_arguments=self.work_queue_arguments("retry", dead_letters=True, consumed=False),
            dlq_arguments=self.work_queue_arguments(
                "dead-letter", dead_letters=False, consumed=False
            ),
        )

    def _static_queue_names(self) -> tuple[str, ...]:
        """Queues declared by :meth:`plan` (cheap: no argument computation)."""
        return (self.status_queue,)

    def max_priority_for(self, queue: str) -> int | None:
        """The ``x-max-priority`` of a queue this topology declares, else ``None``."""
        spec = self.plan().queue(queue)
        if spec is None:
            return None
        value = spec.arguments.get("x-max-priority")
        return value if isinstance(value, int) else None


def _collect(problems: list[str], compute: Callable[[], object]) -> None:
    try:
        compute()
    except TopologyError as exc:
        problems.extend(exc.problems)
