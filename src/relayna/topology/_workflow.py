"""The stage-inbox workflow topology: one topic exchange, one durable queue per stage."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from relayna.errors import TopologyError
from relayna.topology._arguments import (
    check_quorum_arguments,
    merge_queue_arguments,
    queue_builtin_arguments,
)
from relayna.topology._plan import DeclarationPlan
from relayna.topology._routing import topic_matches
from relayna.topology._schemas import ActionSchema
from relayna.topology._status import StatusTopologyBase, copy_table
from relayna.topology._workflow_join import FanIn, transition_cycle
from relayna.transport import BindingSpec, ExchangeSpec, QueueSpec

__all__ = ["SharedStatusWorkflowTopology", "WorkflowEntryRoute", "WorkflowStage"]


def _strs(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _actions(value: Iterable[ActionSchema]) -> tuple[ActionSchema, ...]:
    return tuple(value)


def _stages(value: Iterable[WorkflowStage]) -> tuple[WorkflowStage, ...]:
    return tuple(value)


def _routes(value: Iterable[WorkflowEntryRoute]) -> tuple[WorkflowEntryRoute, ...]:
    return tuple(value)


@attrs.frozen
class WorkflowStage:
    """One stage: its inbox queue, bindings and contract metadata.

    ``publish_routing_key`` is the key used to publish *to* this stage.
    ``allowed_next_stages`` (when non-empty) restricts handoffs;
    ``accepted_actions`` / ``produced_actions`` (when non-empty) restrict the
    actions a message may carry in and out, each with an optional payload
    schema. ``timeout_seconds``, ``max_retries``, ``retry_delay_ms``,
    ``max_inflight`` and ``dedup_key_fields`` are read by the workflow consumer.
    ``join`` makes the stage a fan-in barrier (see :class:`FanIn`).
    """

    name: str
    queue: str
    binding_keys: tuple[str, ...] = attrs.field(converter=_strs)
    publish_routing_key: str
    description: str | None = None
    role: str | None = None
    owner: str | None = None
    tags: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    sla_ms: int | None = None
    accepted_actions: tuple[ActionSchema, ...] = attrs.field(default=(), converter=_actions)
    produced_actions: tuple[ActionSchema, ...] = attrs.field(default=(), converter=_actions)
    allowed_next_stages: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    terminal: bool = False
    timeout_seconds: float | None = None
    max_retries: int | None = None
    retry_delay_ms: int | None = None
    max_inflight: int | None = None
    dedup_key_fields: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    queue_arguments_overrides: dict[str, Any] = attrs.field(factory=dict, converter=copy_table)
    queue_kwargs: dict[str, Any] = attrs.field(factory=dict, converter=copy_table)
    join: FanIn | None = None

    def problems(self) -> list[str]:
        """Problems visible from the stage alone (names, numbers, actions)."""
        label = f"workflow stage {self.name!r}"
        out: list[str] = []
        if not self.name.strip():
            out.append("workflow stage names must not be empty")
        if not self.queue.strip():
            out.append(f"{label} must define a queue name")
        if not any(k.strip() for k in self.binding_keys):
            out.append(f"{label} must define at least one non-blank binding key")
        if not self.publish_routing_key.strip():
            out.append(f"{label} must define publish_routing_key")
        checks: tuple[tuple[str, float | None, float, bool], ...] = (
            ("sla_ms", self.sla_ms, 1, True),
            ("timeout_seconds", self.timeout_seconds, 0, False),
            ("max_retries", self.max_retries, 0, True),
            ("retry_delay_ms", self.retry_delay_ms, 0, False),
            ("max_inflight", self.max_inflight, 1, True),
        )
        for field, value, bound, inclusive in checks:
            if value is None:
                continue
            ok = value >= bound if inclusive else value > bound
            if not ok:
                out.append(f"{label} must define {field} {'>=' if inclusive else '>'} {bound:g}")
        fields = [f.strip() for f in self.dedup_key_fields]
        if any(not f for f in fields):
            out.append(f"{label} dedup_key_fields must not be empty")
        if len(set(fields)) != len(fields):
            out.append(f"{label} dedup_key_fields must be unique")
        for kind, actions in (
            ("accepted_actions", self.accepted_actions),
            ("produced_actions", self.produced_actions),
        ):
            names = [a.action.strip() for a in actions]
            if any(not n for n in names):
                out.append(f"{label} {kind} must define non-empty action names")
            if len(set(names)) != len(names):
                out.append(f"{label} {kind} must not define duplicate action names")
        if len(set(self.allowed_next_stages)) != len(self.allowed_next_stages):
            out.append(f"{label} allowed_next_stages must be unique")
        if self.terminal and self.allowed_next_stages:
            out.append(f"{label} is terminal and cannot define allowed_next_stages")
        if self.terminal and self.produced_actions:
            out.append(f"{label} is terminal and cannot define produced_actions")
        return out


@attrs.frozen
class WorkflowEntryRoute:
    """A named way into the workflow: publish ``routing_key`` to reach ``target_stage``."""

    name: str
    routing_key: str
    target_stage: str


@attrs.frozen(kw_only=True, slots=False)
class SharedStatusWorkflowTopology(StatusTopologyBase):
    """Stage inboxes on a durable **topic** exchange + the shared status stream.

    Every stage queue is declared at start, durable, bound to each of its
    binding keys. Stage queue arguments combine the DLX, consumer timeout,
    single active consumer, max priority and queue type with the global and
    per-stage overrides and kwargs; a key from two sources is an error.

    Tasks cannot be published here: :meth:`task_routing_key` raises; publish
    to a stage or an entry route instead.
    """

    workflow_exchange: str
    stages: tuple[WorkflowStage, ...] = attrs.field(converter=_stages)
    entry_routes: tuple[WorkflowEntryRoute, ...] = attrs.field(default=(), converter=_routes)
    workflow_consumer_timeout_ms: int | None = None
    workflow_single_active_consumer: bool | None = None
    workflow_max_priority: int | None = None
    workflow_queue_type: str | None = None
    workflow_queue_arguments_overrides: dict[str, Any] = attrs.field(
        factory=dict, converter=copy_table
    )
    workflow_queue_kwargs: dict[str, Any] = attrs.field(factory=dict, converter=copy_table)

    # -- validation ----------------------------------------------------------

    def _field_problems(self) -> list[str]:
        problems = super()._field_problems()
        if not self.workflow_exchange.strip():
            problems.append("workflow_exchange must not be empty")
        exchanges = [
            n
            for n in (self.workflow_exchange, self.status_exchange, self.dead_letter_exchange)
            if n
        ]
        if len(set(exchanges)) != len(exchanges):
            problems.append(
                "workflow_exchange, status_exchange and dead_letter_exchange must be distinct"
            )
        if not self.stages:
            problems.append("at least one workflow stage must be configured")
        names: set[str] = set()
        queues: set[str] = {self.status_queue}
        for stage in self.stages:
            problems.extend(stage.problems())
            if stage.name in names:
                problems.append(f"duplicate workflow stage name {stage.name!r}")
            names.add(stage.name)
            if stage.queue in queues:
                problems.append(f"duplicate queue name {stage.queue!r} (stage {stage.name!r})")
            queues.add(stage.queue)
            try:
                self.workflow_queue_arguments(stage.name)
            except TopologyError as exc:
                problems.extend(exc.problems)
        for stage in self.stages:
            for target in stage.allowed_next_stages:
                if target not in names:
                    problems.append(
                        f"workflow stage {stage.name!r} references unknown next stage {target!r}"
                    )
        transitions = {s.name: s.allowed_next_stages for s in self.stages}
        cycle = transition_cycle(transitions)
        if cycle is not None:
            problems.append("workflow transitions must not form a cycle: " + " -> ".join(cycle))
        for stage in self.stages:
            if stage.join is not None:
                problems.extend(stage.join.problems(stage.name, transitions))
                if stage.dedup_key_fields:
                    problems.append(
                        f"workflow stage {stage.name!r}: a join deduplicates its branches "
                        "itself; dedup_key_fields cannot be combined with join"
                    )
        routes: set[str] = set()
        for route in self.entry_routes:
            if not route.name.strip():
                problems.append("workflow entry route names must not be empty")
            if route.name in routes:
                problems.append(f"duplicate workflow entry route {route.name!r}")
            routes.add(route.name)
            if not route.routing_key.strip():
                problems.append(f"workflow entry route {route.name!r} must define routing_key")
            if route.target_stage not in names:
                problems.append(
                    f"workflow entry route {route.name!r} references unknown target stage "
                    f"{route.target_stage!r}"
                )
            elif route.routing_key.strip() and not any(
                topic_matches(k, route.routing_key.strip())
                for k in self._stage(route.target_stage).binding_keys
            ):
                problems.append(
                    f"workflow entry route {route.name!r}: routing key {route.routing_key!r} "
                    f"matches no binding of stage {route.target_stage!r}"
                )
        return problems

    # -- stages --------------------------------------------------------------

    def _stage(self, name: str) -> WorkflowStage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise TopologyError(f"unknown workflow stage {name!r}")

    def stage(self, name: str) -> WorkflowStage:
        """The stage called ``name``; :class:`TopologyError` if there is none."""
        return self._stage(name)

    def entry_route(self, name: str) -> WorkflowEntryRoute:
        for route in self.entry_routes:
            if route.name == name:
                return route
        raise TopologyError(f"unknown workflow entry route {name!r}")

    def workflow_stage_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stages)

    def workflow_queue_names(self) -> tuple[str, ...]:
        return tuple(s.queue for s in self.stages)

    def default_workflow_stage(self) -> str:
        """The first stage."""
        return self.stages[0].name

    @property
    def tasks_exchange(self) -> str:
        """Alias of ``workflow_exchange`` (the exchange work is published to)."""
        return self.workflow_exchange

    @property
    def tasks_queue(self) -> str:
        """The default (first) stage's queue."""
        return self.stages[0].queue

    def workflow_queue_name(self, stage: str) -> str:
        return self._stage(stage).queue

    def workflow_binding_keys(self, stage: str) -> tuple[str, ...]:
        return tuple(k.strip() for k in self._stage(stage).binding_keys if k.strip())

    def workflow_publish_routing_key(self, stage: str) -> str:
        return self._stage(stage).publish_routing_key.strip()

    def workflow_entry_routing_key(self, route: str) -> str:
        return self.entry_route(route).routing_key.strip()

    def workflow_entry_target_stage(self, route: str) -> str:
        return self.entry_route(route).target_stage

    def workflow_queue_arguments(self, stage: str) -> dict[str, Any]:
        """Arguments of a stage queue (conflicting keys raise :class:`TopologyError`)."""
        resolved = self._stage(stage)
        builtins = queue_builtin_arguments(
            "workflow",
            dead_letter_exchange=self.dead_letter_exchange,
            consumer_timeout_ms=self.workflow_consumer_timeout_ms,
            single_active_consumer=self.workflow_single_active_consumer,
            max_priority=self.workflow_max_priority,
            queue_type=self.workflow_queue_type,
        )
        family = f"workflow stage {resolved.name!r}"
        merged = merge_queue_arguments(
            family,
            ("built-in fields", builtins),
            (
                "work_queue_type",
                self.work_queue_arguments(family, dead_letters=bool(self.dead_letter_exchange)),
            ),
            ("workflow_queue_arguments_overrides", self.workflow_queue_arguments_overrides),
            ("stage queue_arguments_overrides", resolved.queue_arguments_overrides),
            ("workflow_queue_kwargs", self.workflow_queue_kwargs),
            ("stage queue_kwargs", resolved.queue_kwargs),
        )
        check_quorum_arguments(family, merged)
        return merged

    # -- routing -------------------------------------------------------------

    def task_routing_key(
        self, task_type: str | None = None, task_id: str | None = None, *, known_only: bool = True
    ) -> str:
        """Always raises: a workflow topology takes stage or entry-route publishes."""
        del task_type, task_id, known_only
        raise TopologyError(
            "SharedStatusWorkflowTopology does not route tasks: publish to a stage "
            "(workflow_publish_routing_key) or an entry route (workflow_entry_routing_key)"
        )

    # -- declarations --------------------------------------------------------

    def _static_queue_names(self) -> tuple[str, ...]:
        return (self.status_queue, *self.workflow_queue_names())

    def _stage_declarations(
        self, stage: WorkflowStage
    ) -> tuple[QueueSpec, tuple[BindingSpec, ...]]:
        queue = QueueSpec(
            stage.queue, durable=True, arguments=self.workflow_queue_arguments(stage.name)
        )
        bindings = tuple(
            BindingSpec(stage.queue, self.workflow_exchange, key)
            for key in self.workflow_binding_keys(stage.name)
        )
        return queue, bindings

    def _workflow_exchange_spec(self) -> ExchangeSpec:
        return ExchangeSpec(self.workflow_exchange, "topic", durable=True)

    def plan(self) -> DeclarationPlan:
        """DLX, workflow (topic), status (topic); status queue, stage queues; bindings."""
        status_queue, status_bindings = self._status_declarations()
        stage_decls = [self._stage_declarations(stage) for stage in self.stages]
        return DeclarationPlan(
            exchanges=(
                *self._dead_letter_exchanges(),
                self._workflow_exchange_spec(),
                self._status_exchange_spec(),
            ),
            queues=(status_queue, *(q for q, _ in stage_decls)),
            bindings=(*status_bindings, *(b for _, bs in stage_decls for b in bs)),
        )

    def stage_queue_plan(self, stage: str) -> DeclarationPlan:
        """Declarations of one stage inbox (the workflow exchange, its queue, its bindings)."""
        queue, bindings = self._stage_declarations(self._stage(stage))
        return DeclarationPlan(
            exchanges=(self._workflow_exchange_spec(),), queues=(queue,), bindings=bindings
        )
