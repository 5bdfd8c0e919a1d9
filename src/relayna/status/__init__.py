"""Task status: the store (history, latest, children, dedupe, pubsub), the
StatusHub bridge from the status stream, and the SSE status stream.

Redis key families (``{prefix}`` defaults to ``relayna``)::

    {prefix}:history:{task_id}            newest-first list, trimmed, TTL
    {prefix}:channel:{task_id}            pubsub channel
    {prefix}:event:{task_id}:{event_id}   dedupe marker
    {prefix}:children:{parent_task_id}    set of child task ids
    {prefix}:hub:{hub_name}:offset        hash: a StatusHub's committed stream offset
"""

from relayna.status._cursor import (
    LAST_EVENT_ID_MAX_LENGTH,
    CursorAction,
    Emit,
    ResumeCursor,
    Resync,
    clean_last_event_id,
)
from relayna.status._event import EventDict, decode_status_body
from relayna.status._frames import KEEPALIVE, encode_comment, encode_frame, encode_retry
from relayna.status._history import HistoryReplay, StreamHistoryReader
from relayna.status._hub import HubStatistics, StatusHub, StatusHubConfig
from relayna.status._hub_offset import HUB_OFFSET_SCRIPT, HubOffsets
from relayna.status._store import WRITE_STATUS_SCRIPT, StatusStore, StatusStoreConfig
from relayna.status._stream import (
    AlreadyComplete,
    KeepAlive,
    NotFound,
    Ready,
    StatusStreamItem,
    StatusStreamStats,
    open_status_stream,
    wait_for_history,
)

__all__ = [
    "HUB_OFFSET_SCRIPT",
    "KEEPALIVE",
    "LAST_EVENT_ID_MAX_LENGTH",
    "WRITE_STATUS_SCRIPT",
    "AlreadyComplete",
    "CursorAction",
    "Emit",
    "EventDict",
    "HistoryReplay",
    "HubOffsets",
    "HubStatistics",
    "KeepAlive",
    "NotFound",
    "Ready",
    "ResumeCursor",
    "Resync",
    "StatusHub",
    "StatusHubConfig",
    "StatusStore",
    "StatusStoreConfig",
    "StatusStreamItem",
    "StatusStreamStats",
    "StreamHistoryReader",
    "clean_last_event_id",
    "decode_status_body",
    "encode_comment",
    "encode_frame",
    "encode_retry",
    "open_status_stream",
    "wait_for_history",
]
