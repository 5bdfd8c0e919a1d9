"""Typed encode/decode shortcuts per envelope kind (thin wrappers over _codec)."""

from __future__ import annotations

from typing import Any

from relayna.contracts._aliases import ContractAliasConfig
from relayna.contracts._codec import decode, encode, is_batch_task_payload, structure
from relayna.contracts._envelopes import (
    BatchTaskEnvelope,
    StatusEvent,
    TaskEnvelope,
    WorkflowEnvelope,
)
from relayna.contracts._json import loads
from relayna.contracts._limits import DEFAULT_LIMITS, Limits

__all__ = [
    "decode_batch", "decode_status", "decode_task", "decode_task_message", "decode_workflow",
    "encode_batch", "encode_status", "encode_task", "encode_workflow",
]  # fmt: skip

Body = bytes | bytearray | memoryview | str


def encode_task(task: TaskEnvelope, *, limits: Limits = DEFAULT_LIMITS) -> bytes:
    return encode(task, limits=limits)


def encode_batch(batch: BatchTaskEnvelope, *, limits: Limits = DEFAULT_LIMITS) -> bytes:
    return encode(batch, limits=limits)


def encode_status(event: StatusEvent, *, limits: Limits = DEFAULT_LIMITS) -> bytes:
    return encode(event, limits=limits)


def encode_workflow(message: WorkflowEnvelope, *, limits: Limits = DEFAULT_LIMITS) -> bytes:
    return encode(message, limits=limits)


def decode_task(
    data: Body, *, limits: Limits = DEFAULT_LIMITS, aliases: ContractAliasConfig | None = None
) -> TaskEnvelope:
    return decode(data, TaskEnvelope, limits=limits, aliases=aliases)


def decode_batch(
    data: Body, *, limits: Limits = DEFAULT_LIMITS, aliases: ContractAliasConfig | None = None
) -> BatchTaskEnvelope:
    return decode(data, BatchTaskEnvelope, limits=limits, aliases=aliases)


def decode_status(
    data: Body, *, limits: Limits = DEFAULT_LIMITS, aliases: ContractAliasConfig | None = None
) -> StatusEvent:
    return decode(data, StatusEvent, limits=limits, aliases=aliases)


def decode_workflow(
    data: Body, *, limits: Limits = DEFAULT_LIMITS, aliases: ContractAliasConfig | None = None
) -> WorkflowEnvelope:
    return decode(data, WorkflowEnvelope, limits=limits, aliases=aliases)


def decode_task_message(
    data: Body, *, limits: Limits = DEFAULT_LIMITS, aliases: ContractAliasConfig | None = None
) -> TaskEnvelope | BatchTaskEnvelope:
    """Decode a task queue body: a batch (string ``batch_id`` + list ``tasks``)
    or a single task."""
    value: Any = loads(data, limits=limits)
    if type(value) is dict and is_batch_task_payload(value):
        return structure(value, BatchTaskEnvelope, aliases=aliases)
    return structure(value, TaskEnvelope, aliases=aliases)
