"""The dedup signature of a message at a stage with ``dedup_key_fields`` (pure)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from relayna.contracts import WorkflowEnvelope

__all__ = ["dedup_signature"]


def dedup_signature(message: WorkflowEnvelope, fields: Sequence[str]) -> str:
    """sha256 (40 hex digits) of the action and the values of ``fields`` in the payload.

    Two messages with the same action and the same values (a missing field
    counts as null) are the same work: the second is a duplicate once the
    first completed. Key order, whitespace and the message id do not matter.
    """
    values = {name: message.payload.get(name) for name in fields}
    # stdlib json: payloads may hold integers beyond 64 bits (orjson refuses them)
    canonical = json.dumps(
        [message.action, values], sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:40]
