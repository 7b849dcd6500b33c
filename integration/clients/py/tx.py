"""redis-py transactions through sessproxy: pipeline(transaction=True),
a write to a destroyed session inside one, and WATCH via transaction()."""

import json

import redis

from driver import proxy_address, serve

host, port = proxy_address()
r = redis.Redis(host=host, port=port, decode_responses=True, socket_timeout=10)


def tx(a, b, pa, pb):
    # MULTI, SET a, SET b, EXPIRE b 100, GET a, EXEC: sent in one write.
    pipe = r.pipeline(transaction=True)
    pipe.set(a, pa)
    pipe.set(b, pb)
    pipe.expire(b, 100)
    pipe.get(a)
    return pipe.execute()


def tx_long_ttl(c, pc):
    pipe = r.pipeline(transaction=True)
    pipe.set(c, pc, ex=365 * 24 * 3600)
    pipe.ttl(c)
    return pipe.execute()


def tx_tombstone(a, gone, pa):
    # raise_on_error=False: the replies come back in place, errors as
    # ResponseError objects, as redis-py hands them over.
    pipe = r.pipeline(transaction=True)
    pipe.set(a, pa)
    pipe.set(gone, pa)
    pipe.expire(a, 120)
    out = pipe.execute(raise_on_error=False)
    return [{"error": str(v)} if isinstance(v, Exception) else v for v in out]


def watch_increment(key):
    # redis-py's optimistic helper: WATCH key, GET, MULTI, SET, EXEC,
    # retried on WatchError.
    def incr(pipe):
        n = json.loads(pipe.get(key))["n"]
        pipe.multi()
        pipe.set(key, json.dumps({"n": n + 1}))

    return r.transaction(incr, key)


serve({"tx": tx, "tx_long_ttl": tx_long_ttl, "tx_tombstone": tx_tombstone, "watch_increment": watch_increment})
