"""Python twins of the DLQ store's Lua scripts (``_lua``), for the memory store.

Each function does what its Lua script does, step by step, through
:class:`~relayna.transport.ScriptOps` (atomic: nothing awaits). The store's
conformance tests run the same scenarios on Redis and on the memory store.
"""

from __future__ import annotations

from typing import Any

from relayna.transport import ScriptOps

__all__ = [
    "abort_twin",
    "add_twin",
    "claim_twin",
    "delete_twin",
    "finish_twin",
    "get_twin",
    "investigate_twin",
    "list_twin",
    "summary_twin",
]

_INTENT = ("intent_kind", "intent_token", "intent_at", "intent_target")
_UNCONFIRMED = ("unconfirmed_kind", "unconfirmed_token", "unconfirmed_at", "unconfirmed_target")


class _Ctx:
    """The six context arguments and the prelude's helpers."""

    def __init__(self, ops: ScriptOps, args: list[bytes]) -> None:
        self.ops = ops
        self.base = args[0].decode()
        self.lock_base = args[1].decode()
        self.record_base = args[2].decode()
        self.records = args[3].decode()
        self.ttl = int(args[4])
        self.cutoff = int(args[5])

    def field(self, key: str, name: str) -> bytes | None:
        return self.ops.hget(key, name)

    def index_add(self, key: str, score: float, dlq_id: bytes) -> None:
        ops = self.ops
        ops.zadd(key, {dlq_id: score})
        if self.ttl > 0:
            stale = ops.zrangebyscore(key, float("-inf"), self.cutoff - 1)
            if stale:
                ops.zrem(key, *stale)
            ops.expire(key, self.ttl / 1000)

    def move(
        self, dlq_id: bytes, field: str, old: bytes | None, new: bytes | None, score: float
    ) -> None:
        if old == new:
            return
        if old is not None:
            self.ops.zrem(f"{self.base}{field}:{old.decode()}", dlq_id)
        if new is not None:
            self.index_add(f"{self.base}{field}:{new.decode()}", score, dlq_id)

    def remove_record(self, dlq_id: bytes) -> None:
        ops = self.ops
        rkey = self.record_base + dlq_id.decode()
        ix = ops.hget(rkey, "ix")
        if ix:
            for key in ix.decode().split("\n"):
                if key:
                    ops.zrem(key, dlq_id)
        state = ops.hget(rkey, "state")
        if state is not None:
            ops.zrem(f"{self.base}state:{state.decode()}", dlq_id)
        inv = ops.hget(rkey, "investigation_status")
        if inv is not None:
            ops.zrem(f"{self.base}investigation:{inv.decode()}", dlq_id)
        ops.zrem(self.records, dlq_id)
        ops.delete(rkey)

    def live(self, dlq_id: bytes) -> bytes | None:
        score = self.ops.hget(self.record_base + dlq_id.decode(), "score")
        if score is None:
            return None
        if self.ttl > 0 and int(score) < self.cutoff:
            self.remove_record(dlq_id)
            return None
        return score

    def resolve(self, dlq_id: bytes) -> None:
        ops = self.ops
        rkey = self.record_base + dlq_id.decode()
        kind, token, at, target = (ops.hget(rkey, name) for name in _INTENT)
        if kind is None:
            return
        if ops.exists(self.lock_base + dlq_id.decode()):
            return
        ops.hset(
            rkey,
            {
                "unconfirmed_kind": kind,
                "unconfirmed_token": token or b"",
                "unconfirmed_at": at or b"",
                "unconfirmed_target": target or b"",
            },
        )
        ops.hdel(rkey, *_INTENT)
        if ops.hget(rkey, "state") == b"replaying":
            ops.hset(rkey, {"state": b"dead_lettered"})
            score = ops.hget(rkey, "score") or b"0"
            self.move(dlq_id, "state", b"replaying", b"dead_lettered", float(score))

    def release(self, dlq_id: bytes, token: bytes) -> None:
        lock = self.lock_base + dlq_id.decode()
        if self.ops.get(lock) == token:
            self.ops.delete(lock)


def _hgetall_flat(ops: ScriptOps, key: str) -> list[bytes]:
    out: list[bytes] = []
    for name, value in ops.hgetall(key).items():
        out += [name, value]
    return out


def add_twin(ops: ScriptOps, keys: list[str], args: list[bytes]) -> int:
    ctx = _Ctx(ops, args)
    dlq_id, score = args[6], int(args[7])
    if ops.exists(keys[0]):
        return 0
    life = 0
    if ctx.ttl > 0:
        life = score - ctx.cutoff
        if life <= 0:
            return -1
    pairs = args[12:]
    mapping: dict[str, Any] = {"score": args[7], "ix": args[11]}
    for i in range(0, len(pairs), 2):
        mapping[pairs[i].decode()] = pairs[i + 1]
    ops.hset(keys[0], mapping)
    if life > 0:
        ops.expire(keys[0], life / 1000)
    ops.hset(keys[2], {args[8].decode(): args[9]})
    ctx.index_add(keys[1], score, dlq_id)
    for key in keys[3:]:
        ctx.index_add(key, score, dlq_id)
    cap = int(args[10])
    if cap > 0:
        evicted = 0
        while evicted < 8 and ops.zcard(ctx.records) > cap:
            ctx.remove_record(ops.zrange(ctx.records, 0, 0)[0])
            evicted += 1
    return 1


def get_twin(ops: ScriptOps, keys: list[str], args: list[bytes]) -> list[bytes]:
    ctx = _Ctx(ops, args)
    if ctx.live(args[6]) is None:
        return []
    ctx.resolve(args[6])
    return _hgetall_flat(ops, keys[0])


def list_twin(ops: ScriptOps, keys: list[str], args: list[bytes]) -> list[Any]:
    ctx = _Ctx(ops, args)
    maxs, cid, mins = float(args[6]), args[7], float(args[8])
    limit, budget = int(args[9]), int(args[10])
    fields = [f.decode() for f in args[11:]]
    driver = 0
    if len(keys) > 1:
        sizes = [(ops.zcard(keys[i]), i) for i in range(1, len(keys))]
        driver = min(sizes, key=lambda pair: (pair[0], pair[1]))[1]
    res: list[Any] = [0, None, None]
    found = scanned = offset = 0
    chunk = max(min(limit + 1, budget), 16)
    while True:
        batch = ops.zrangebyscore(keys[driver], mins, maxs, offset=offset, count=chunk, desc=True)
        if not batch:
            break
        offset += len(batch)
        stop = False
        for dlq_id in batch:
            score = ops.zscore(keys[driver], dlq_id)
            assert score is not None
            if cid and score == maxs and dlq_id >= cid:
                continue
            scanned += 1
            member = all(
                ops.zscore(keys[i], dlq_id) is not None for i in range(1, len(keys)) if i != driver
            )
            if member:
                rkey = ctx.record_base + dlq_id.decode()
                if not ops.exists(rkey):
                    for key in keys:
                        ops.zrem(key, dlq_id)
                else:
                    if found == limit:
                        res[0] = 1
                        stop = True
                        break
                    ctx.resolve(dlq_id)
                    found += 1
                    res += [dlq_id, b"%d" % int(score)]
                    res += [ops.hget(rkey, name) for name in fields]
            res[1], res[2] = b"%d" % int(score), dlq_id
            if scanned >= budget:
                res[0] = 2
                stop = True
                break
        if stop:
            break
    if res[0] == 0:
        res[1] = res[2] = None
    return res


def claim_twin(ops: ScriptOps, keys: list[str], args: list[bytes]) -> list[bytes]:
    ctx = _Ctx(ops, args)
    dlq_id, token, kind, force = args[6], args[7], args[8], args[9]
    if ctx.live(dlq_id) is None:
        return [b"missing"]
    lock = ctx.lock_base + dlq_id.decode()
    if ops.exists(lock):
        return [b"in_progress"]
    ctx.resolve(dlq_id)
    state = ops.hget(keys[0], "state")
    if force != b"1":
        if ops.hget(keys[0], "unconfirmed_kind") is not None:
            return [b"unconfirmed_republish"]
        if kind == b"replay" and state == b"replayed":
            return [b"already_replayed"]
        if kind == b"retry" and ops.hget(keys[0], "retry_status") == b"retried":
            return [b"already_retried"]
    ops.set(lock, token, ttl=int(args[12]) / 1000)
    ops.hset(
        keys[0],
        {
            "intent_kind": kind,
            "intent_token": token,
            "intent_at": args[10],
            "intent_target": args[11],
        },
    )
    if kind == b"replay":
        ops.hset(keys[0], {"state": b"replaying"})
        score = float(ops.hget(keys[0], "score") or b"0")
        ctx.move(dlq_id, "state", state, b"replaying", score)
    return [b"claimed", *_hgetall_flat(ops, keys[0])]


def finish_twin(ops: ScriptOps, keys: list[str], args: list[bytes]) -> bytes:
    ctx = _Ctx(ops, args)
    dlq_id, token, now, target = args[6], args[7], args[8], args[9]
    if not ops.exists(keys[0]):
        return b"missing"
    if ops.hget(keys[0], "intent_token") == token:
        kind = ops.hget(keys[0], "intent_kind")
    elif ops.hget(keys[0], "unconfirmed_token") == token:
        kind = ops.hget(keys[0], "unconfirmed_kind")
    else:
        ctx.release(dlq_id, token)
        return b"lost"
    if kind == b"replay":
        state = ops.hget(keys[0], "state")
        count = int(ops.hget(keys[0], "replay_count") or b"0") + 1
        ops.hset(
            keys[0],
            {
                "state": b"replayed",
                "replayed_at": now,
                "replay_target_queue_name": target,
                "replay_count": b"%d" % count,
            },
        )
        score = float(ops.hget(keys[0], "score") or b"0")
        ctx.move(dlq_id, "state", state, b"replayed", score)
    else:
        ops.hset(
            keys[0], {"retry_status": b"retried", "retried_at": now, "retry_target_queue": target}
        )
        for name, value in zip(
            ("retried_by", "retried_task_id", "retry_note"), args[10:13], strict=True
        ):
            if value == b"":
                ops.hdel(keys[0], name)
            else:
                ops.hset(keys[0], {name: value})
    ops.hdel(keys[0], *_INTENT)
    ops.hdel(keys[0], *_UNCONFIRMED)
    ctx.release(dlq_id, token)
    return b"done"


def abort_twin(ops: ScriptOps, keys: list[str], args: list[bytes]) -> bytes:
    ctx = _Ctx(ops, args)
    dlq_id, token, unknown = args[6], args[7], args[8]
    if ops.hget(keys[0], "intent_token") == token:
        kind, _, at, target = (ops.hget(keys[0], name) for name in _INTENT)
        if unknown == b"1":
            ops.hset(
                keys[0],
                {
                    "unconfirmed_kind": kind or b"",
                    "unconfirmed_token": token,
                    "unconfirmed_at": at or b"",
                    "unconfirmed_target": target or b"",
                },
            )
        ops.hdel(keys[0], *_INTENT)
        if ops.hget(keys[0], "state") == b"replaying":
            ops.hset(keys[0], {"state": b"dead_lettered"})
            score = float(ops.hget(keys[0], "score") or b"0")
            ctx.move(dlq_id, "state", b"replaying", b"dead_lettered", score)
    ctx.release(dlq_id, token)
    return b"ok"


def investigate_twin(ops: ScriptOps, keys: list[str], args: list[bytes]) -> bytes:
    ctx = _Ctx(ops, args)
    dlq_id, status = args[6], args[7]
    score = ctx.live(dlq_id)
    if score is None:
        return b"missing"
    old = ops.hget(keys[0], "investigation_status")
    ops.hset(keys[0], {"investigation_status": status})
    names = ("investigated_at", "investigated_by", "investigation_note")
    for name, value in zip(names, args[8:11], strict=True):
        if value == b"":
            ops.hdel(keys[0], name)
        else:
            ops.hset(keys[0], {name: value})
    ctx.move(dlq_id, "investigation", old, status, float(score))
    return b"ok"


def delete_twin(ops: ScriptOps, keys: list[str], args: list[bytes]) -> bytes:
    ctx = _Ctx(ops, args)
    dlq_id = args[6]
    if ctx.live(dlq_id) is None:
        return b"missing"
    if ops.exists(ctx.lock_base + dlq_id.decode()):
        return b"in_progress"
    ctx.remove_record(dlq_id)
    return b"deleted"


def summary_twin(ops: ScriptOps, keys: list[str], args: list[bytes]) -> list[Any]:
    ctx = _Ctx(ops, args)
    res: list[Any] = []
    for queue, key_raw in ops.hgetall(keys[0]).items():
        key = key_raw.decode()
        if ctx.ttl > 0:
            stale = ops.zrangebyscore(key, float("-inf"), ctx.cutoff - 1)
            if stale:
                ops.zrem(key, *stale)
        count = ops.zcard(key)
        if count == 0:
            ops.hdel(keys[0], queue.decode())
        else:
            newest = ops.zrange(key, -1, -1)[0]
            score = ops.zscore(key, newest)
            res += [queue, count, b"%d" % int(score or 0)]
    return res
