"""DLQ records and indexes, failed-task investigation, replay with a lock, broker inspectors.

::

    store = DLQStore(store, DLQStoreConfig(prefix="relayna", ttl_seconds=7 * 86400))
    consumer = TaskConsumer(..., dlq_recorder=store)       # consumers record dead-letters
    service = DLQService(store, broker, status=status_store)
    page = await service.list_messages(DLQQuery(task_id="t1"))
    result = await service.replay("…dlq_id…")               # exactly one concurrent replay wins
"""

from relayna.consumer import DLQRecord, DLQRecorder
from relayna.dlq._inspect import (
    BrokerDLQInspector,
    BrokerDLQMessage,
    ManagementDLQInspector,
    PeekDLQInspector,
    broker_message,
    record_from_broker,
)
from relayna.dlq._keys import DEFAULT_MAX_BODY_BYTES, DLQKeys, DLQStoreConfig
from relayna.dlq._query import (
    DEFAULT_LIMIT,
    INVESTIGATION_STATES,
    MAX_LIMIT,
    STATES,
    Cursor,
    DLQQuery,
    check_filter,
    parse_datetime,
    parse_limit,
    parse_query,
)
from relayna.dlq._replay import (
    RETRYABLE_STATUSES,
    ManualRetry,
    ReplayResult,
    RetryResult,
)
from relayna.dlq._republish import UNKNOWN_SOURCE, manual_retry_headers, replay_headers
from relayna.dlq._scripts import ALL_SCRIPTS
from relayna.dlq._service import BrokerImport, DLQService
from relayna.dlq._store import Claim, DLQPage, DLQStore, QueueCount
from relayna.dlq._views import diagnosis, dlq_detail, dlq_summary, failed_detail, failed_summary

__all__ = [
    "ALL_SCRIPTS",
    "BrokerImport",
    "RETRYABLE_STATUSES",
    "UNKNOWN_SOURCE",
    "BrokerDLQInspector",
    "BrokerDLQMessage",
    "DLQService",
    "ManagementDLQInspector",
    "ManualRetry",
    "PeekDLQInspector",
    "ReplayResult",
    "RetryResult",
    "broker_message",
    "check_filter",
    "diagnosis",
    "dlq_detail",
    "dlq_summary",
    "failed_detail",
    "failed_summary",
    "manual_retry_headers",
    "record_from_broker",
    "replay_headers",
    "DEFAULT_LIMIT",
    "DEFAULT_MAX_BODY_BYTES",
    "INVESTIGATION_STATES",
    "MAX_LIMIT",
    "STATES",
    "Claim",
    "Cursor",
    "DLQKeys",
    "DLQPage",
    "DLQQuery",
    "DLQRecord",
    "DLQRecorder",
    "DLQStore",
    "DLQStoreConfig",
    "QueueCount",
    "parse_datetime",
    "parse_limit",
    "parse_query",
]
