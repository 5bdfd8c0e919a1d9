"""The dedup signature of a message at a stage with ``dedup_key_fields`` (pure)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import orjson

from relayna.contracts import WorkflowEnvelope

__all__ = ["dedup_signature"]


def dedup_signature(message: WorkflowEnvelope, fields: Sequence[str]) -> str:
    """sha256 (40 hex digits) of the action and the values of ``fields`` in the payload.

    Two messages with the same action and the same values (a missing field
    counts as null) are the same work: the second is a duplicate once the
    first completed. Key order, whitespace and the message id do not matter.
    """
    values = {name: message.payload.get(name) for name in fields}
    canonical = orjson.dumps(
        [message.action, values], option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
    )
    return hashlib.sha256(canonical).hexdigest()[:40]
