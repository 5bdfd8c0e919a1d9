"""Redis Cluster key slots and the hash tags of relayna's cluster key layout.

Redis Cluster places a key in one of 16384 slots: ``CRC16(key) mod 16384``
(CRC16/XMODEM), where only the *hash tag* counts when the key has one: the
bytes between the first ``{`` and the first ``}`` after it, if that substring
is non-empty. A script (``EVAL``/``EVALSHA``) may only touch keys of one slot,
so every relayna store with ``cluster=True`` puts the keys one script call
touches under one tag:

* per task: ``{task_id}`` (``relayna:history:{t1}``, ``relayna:event:{t1}:e1``);
* per run, per service, per DLQ prefix: ``{run_id}``, ``{service_id}``,
  ``{prefix}``.

Identifiers never contain braces (:func:`relayna.contracts.validate_identifier`
refuses them), so a tagged identifier is always a well-formed tag; a key
prefix used in the cluster layout must be brace-free too
(:func:`check_cluster_prefix`), or its first ``{`` would become the tag.

This module is pure: :func:`key_slot` is the same computation as the server's
``CLUSTER KEYSLOT`` (tests compare the two), used by tests to prove the
layout and by anything that routes a key to a node.
"""

from __future__ import annotations

from binascii import crc_hqx

from relayna._validators import check_cluster_prefix
from relayna.errors import ContractError

__all__ = ["CLUSTER_SLOTS", "check_cluster_prefix", "hash_tag", "key_slot", "tag_prefix"]

#: The number of slots of a Redis Cluster.
CLUSTER_SLOTS = 16384


def key_slot(key: str | bytes) -> int:
    """The Redis Cluster slot of ``key`` (what ``CLUSTER KEYSLOT key`` answers).

    ``str`` keys are encoded as UTF-8, as the store adapters send them.
    """
    raw = key.encode() if isinstance(key, str) else bytes(key)
    start = raw.find(b"{")
    if start != -1:
        end = raw.find(b"}", start + 1)
        if end > start + 1:  # an empty tag ``{}`` does not count
            raw = raw[start + 1 : end]
    # binascii.crc_hqx is CRC-16/CCITT with the caller's initial value: with 0
    # it is CRC-16/XMODEM, the variant Redis Cluster uses.
    return crc_hqx(raw, 0) % CLUSTER_SLOTS


def hash_tag(value: str) -> str:
    """``{value}``: a hash tag whose slot is the slot of ``value``.

    Raises:
        ContractError: ``value`` is empty or contains ``{`` or ``}`` (it would
            not be the tag Redis reads; reason ``schema``).
    """
    if not value or "{" in value or "}" in value:
        raise ContractError(
            f"cannot use {value!r} as a Redis Cluster hash tag",
            errors=[("key", "a hash tag must be non-empty and brace-free")],
            reason="schema",
        )
    return "{" + value + "}"


def tag_prefix(prefix: str, cluster: bool) -> str:
    """The prefix as a hash tag (``{prefix}``) in the cluster layout, else unchanged.

    For key families that one script touches together across many entities
    (a feed, a DLQ's indexes): all of them share the prefix's one slot.

    Raises:
        ConfigurationError: ``cluster`` and the prefix contains a brace.
    """
    if not cluster:
        return prefix
    return "{" + check_cluster_prefix(prefix) + "}"
