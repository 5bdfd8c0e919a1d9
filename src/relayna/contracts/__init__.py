"""Wire contracts: envelopes, the JSON codec, identifiers, aliases, limits, headers.

Envelopes are frozen attrs classes; :func:`encode` / :func:`decode` (and the
per-kind shortcuts) own the wire format. Every violation raises
:class:`relayna.errors.ContractError` (or :class:`~relayna.errors.EnvelopeTooLarge`)
with readable field paths and a machine-readable ``reason``.
"""

from relayna.contracts import _headers as headers
from relayna.contracts._aliases import (
    DOCUMENT_COMPAT_ALIASES,
    AliasSource,
    ContractAliasConfig,
    alias_map,
    denormalize_aliases,
    normalize_aliases,
    public_output_aliases,
)
from relayna.contracts._api import (
    compute_event_id,
    decode,
    decode_batch,
    decode_status,
    decode_task,
    decode_task_message,
    decode_workflow,
    encode,
    encode_batch,
    encode_status,
    encode_task,
    encode_workflow,
    ensure_event_id,
)
from relayna.contracts._codec import (
    Envelope,
    format_datetime,
    is_batch_task_payload,
    structure,
    unstructure,
)
from relayna.contracts._deadline import (
    MAX_TIMEOUT_SECONDS,
    deadline_from,
    format_deadline,
    parse_deadline,
)
from relayna.contracts._envelopes import (
    SPEC_VERSION,
    BatchTaskEnvelope,
    StatusEvent,
    TaskEnvelope,
    TerminalStatusSet,
    WorkflowEnvelope,
)
from relayna.contracts._headers import (
    check_header_budget,
    get_header,
    parse_count_header,
    read_count_header,
    without_headers,
)
from relayna.contracts._ids import IDENTIFIER_MAX_LENGTH, is_valid_identifier, validate_identifier
from relayna.contracts._json import DECODER_ERROR, decoder_failure, dumps, loads
from relayna.contracts._limits import DEFAULT_LIMITS, Limits, check_body_size, check_depth
from relayna.contracts._schema import IDENTIFIER_SCHEMA, json_schema

__all__ = [
    "DECODER_ERROR",
    "DEFAULT_LIMITS",
    "DOCUMENT_COMPAT_ALIASES",
    "IDENTIFIER_MAX_LENGTH",
    "IDENTIFIER_SCHEMA",
    "MAX_TIMEOUT_SECONDS",
    "SPEC_VERSION",
    "AliasSource",
    "BatchTaskEnvelope",
    "ContractAliasConfig",
    "Envelope",
    "Limits",
    "StatusEvent",
    "TaskEnvelope",
    "TerminalStatusSet",
    "WorkflowEnvelope",
    "alias_map",
    "check_body_size",
    "check_depth",
    "check_header_budget",
    "compute_event_id",
    "deadline_from",
    "decode",
    "decode_batch",
    "decode_status",
    "decode_task",
    "decode_task_message",
    "decode_workflow",
    "decoder_failure",
    "denormalize_aliases",
    "dumps",
    "encode",
    "encode_batch",
    "encode_status",
    "encode_task",
    "encode_workflow",
    "ensure_event_id",
    "format_datetime",
    "format_deadline",
    "get_header",
    "headers",
    "is_batch_task_payload",
    "is_valid_identifier",
    "json_schema",
    "loads",
    "normalize_aliases",
    "parse_count_header",
    "parse_deadline",
    "public_output_aliases",
    "read_count_header",
    "structure",
    "unstructure",
    "validate_identifier",
    "without_headers",
]
