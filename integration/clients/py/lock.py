"""redis-py's Lock through sessproxy: SET NX PX to acquire, its Lua scripts
(EVALSHA, SCRIPT LOAD on NOSCRIPT) to release, extend and reacquire."""

import time

import redis
from redis.exceptions import LockNotOwnedError

from driver import proxy_address, serve

host, port = proxy_address()
r = redis.Redis(host=host, port=port, decode_responses=True, socket_timeout=10)
locks = {}


def acquire(name):
    lock = r.lock(name, timeout=30, blocking_timeout=2)
    locks["holder"] = lock
    return {"acquired": lock.acquire(), "token": lock.local.token.decode()}


def contend(name):
    other = r.lock(name, timeout=30, sleep=0.05)
    locks["other"] = other
    started = time.monotonic()
    blocked = other.acquire(blocking_timeout=0.3)
    return {
        "nonblocking": other.acquire(blocking=False),
        "blocking": blocked,
        "waited": time.monotonic() - started,
        "locked": other.locked(),
        "holder_owns": locks["holder"].owned(),
        "other_owns": other.owned(),
    }


def extend(seconds, replace):
    return locks["holder"].extend(seconds, replace_ttl=replace)


def reacquire():
    return locks["holder"].reacquire()


def release(which):
    locks[which].release()
    return {"locked": locks[which].locked(), "sha": locks[which].lua_release.sha}


def acquire_other():
    other = locks["other"]
    return {"acquired": other.acquire(blocking=False), "token": other.local.token.decode()}


def release_with(token):
    # The release script with a token that is not the holder's: it must
    # leave the lock alone (redis-py raises LockNotOwnedError).
    try:
        locks["holder"].do_release(token.encode())
    except LockNotOwnedError as e:
        return "LockNotOwnedError: %s" % e
    return "released"


def with_block(name):
    with r.lock(name, timeout=5, blocking_timeout=1) as lock:
        inside = r.get(name) == lock.local.token.decode()
    return {"held_inside": inside, "exists_after": r.exists(name)}


serve({
    "acquire": acquire,
    "contend": contend,
    "extend": extend,
    "reacquire": reacquire,
    "release": release,
    "acquire_other": acquire_other,
    "release_with": release_with,
    "with_block": with_block,
})
