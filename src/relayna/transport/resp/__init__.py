"""relayna's own Redis client (RESP2 on anyio): the default store adapter.

Layers, as in :mod:`relayna.transport.amqp`: :mod:`._protocol` encodes
commands and parses replies without I/O; :mod:`._connection` moves the bytes
(one connection shared by all callers, pipelined; a caller alone reads its
own reply); :mod:`._connect` opens connections; :mod:`._store` maps the
:class:`~relayna.transport.Store` contract and pubsub onto them.

Why not only coredis: at the status plane's event rates the store round
trip is dominated by the client's own hand-overs (coredis runs a writer and
a reader task per connection and wakes the caller through memory streams);
here a caller alone on the connection writes its command and reads the
reply itself. See
docs/status.md for the measured difference. ``open_store(url,
adapter="coredis")`` keeps the coredis adapter.
"""

from relayna.transport.resp._cluster import ClusterRespStore
from relayna.transport.resp._cluster_open import open_cluster_store
from relayna.transport.resp._cluster_url import (
    CLUSTER_SCHEMES,
    ClusterParams,
    key_slot,
    parse_cluster_url,
)
from relayna.transport.resp._store import NativeRespStore, open_native_store
from relayna.transport.resp._url import RespParams, parse_resp_url

__all__ = [
    "CLUSTER_SCHEMES",
    "ClusterParams",
    "ClusterRespStore",
    "NativeRespStore",
    "RespParams",
    "key_slot",
    "open_cluster_store",
    "open_native_store",
    "parse_cluster_url",
    "parse_resp_url",
]
