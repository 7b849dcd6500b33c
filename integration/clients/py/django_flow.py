"""Django's cache sessions (SESSION_ENGINE = "django.contrib.sessions.backends.cache")
on django-redis through sessproxy, with Django's and django-redis's defaults
(KEY_PREFIX "", VERSION 1, SESSION_COOKIE_AGE two weeks): SessionStore used
as SessionMiddleware uses it, one step per request.

The late write is a request that loaded the session before the logout and
saves it after. Django's save() first GETs the key and raises UpdateError
when it is gone, so the write that reaches Redis is the one of a request
whose GET came before the logout and whose SET after: 'late_start' saves in
a thread whose cache lets the SET wait (after Django's GET), 'late_finish'
lets it go on.
"""

import threading

import django
from django.conf import settings

from driver import proxy_address, serve

host, port = proxy_address()
settings.configure(
    CACHES={
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://%s:%d/0" % (host, port),
        }
    },
    SESSION_ENGINE="django.contrib.sessions.backends.cache",
    INSTALLED_APPS=["django.contrib.sessions"],
)
django.setup()

from django.contrib.sessions.backends.base import UpdateError  # noqa: E402
from django.contrib.sessions.backends.cache import SessionStore  # noqa: E402
from django.core.cache import cache  # noqa: E402


class SlowWrites:
    """The cache as a slow request sees it: reads at once, writes held until
    released."""

    def __init__(self, inner):
        self._inner = inner
        self.writing = threading.Event()
        self.release = threading.Event()

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def set(self, *args, **kwargs):
        self.writing.set()
        if not self.release.wait(30):
            raise RuntimeError("never released")
        return self._inner.set(*args, **kwargs)


def login():
    s = SessionStore()
    s["user_id"] = 42
    s.save()  # create(): EXISTS, then SET NX PX
    return {"key": s.session_key, "age": s.get_expiry_age()}


def read(key):
    s = SessionStore(key)
    return s.get("user_id")


def touch(key, seconds):
    # What a view's request.session.set_expiry(n) saves.
    s = SessionStore(key)
    s.set_expiry(seconds)
    s.save()
    return s.get_expiry_age()


def logout(key):
    # django.contrib.auth.logout(): request.session.flush().
    s = SessionStore(key)
    s.load()
    s.flush()
    return s.session_key


late = {}


def late_start(key):
    # Two requests that loaded the session before the logout: one whose
    # save() runs its GET now and waits before its SET, one that saves
    # after the logout, GET included.
    slow = SessionStore(key)
    slow["cart"] = slow["user_id"] + 1
    gate = SlowWrites(slow._cache)
    slow._cache = gate
    after = SessionStore(key)
    after["cart"] = after["user_id"] + 2
    late.update(gate=gate, after=after, result={})

    def run():
        try:
            slow.save()
            late["result"]["saved"] = True
        except Exception as e:  # reported to the test, not raised here
            late["result"]["raised"] = "%s: %s" % (type(e).__name__, e)

    late["thread"] = threading.Thread(target=run)
    late["thread"].start()
    if not gate.writing.wait(10):
        raise RuntimeError("the slow save never reached its SET")
    return True


def late_finish():
    late["gate"].release.set()
    late["thread"].join(10)
    result = late["result"]
    try:
        late["after"].save()
        result["after"] = "saved"
    except UpdateError:
        result["after"] = "UpdateError"
    return result


def other_set():
    cache.set("other", 1)
    return cache.get("other")


def other_delete():
    return cache.delete("other")


serve({
    "login": login,
    "read": read,
    "touch": touch,
    "logout": logout,
    "late_start": late_start,
    "late_finish": late_finish,
    "other_set": other_set,
    "other_delete": other_delete,
})
