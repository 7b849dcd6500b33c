"""Flask-Session (SESSION_TYPE = "redis") through sessproxy, with its
defaults (key prefix "session:", pickle, PERMANENT_SESSION_LIFETIME 31 days):
a Flask app driven with app.test_client(), which carries the session cookie
from one request to the next. Each step is one request; 'slow_start' begins
a request in a thread that loads the session and waits, 'slow_finish' lets
it modify the session and end, so that its write comes after a logout.
"""

import threading

import redis
from flask import Flask, session
from flask_session import Session

from driver import proxy_address, serve

host, port = proxy_address()
app = Flask(__name__)
app.config.update(SESSION_TYPE="redis", SESSION_REDIS=redis.Redis(host=host, port=port, socket_timeout=10))
Session(app)

reading = threading.Event()  # the slow request has loaded its session
release = threading.Event()  # the slow request may go on


@app.route("/login")
def login_view():
    session["user_id"] = 42
    return session.sid


@app.route("/read")
def read_view():
    return str(session.get("user_id"))


@app.route("/logout")
def logout_view():
    session.clear()  # Flask-Session deletes the key of an emptied session
    return ""


@app.route("/slow")
def slow_view():
    user = session.get("user_id")
    reading.set()
    if not release.wait(30):
        raise RuntimeError("never released")
    session["cart"] = 3
    return str(user)


client = app.test_client()


def request(path):
    res = client.get(path)
    return {"status": res.status_code, "body": res.get_data(as_text=True), "set_cookie": res.headers.get("Set-Cookie")}


slow = {}


def slow_start(sid):
    # Another tab of the same browser: the same cookie, its own request.
    def run():
        try:
            res = app.test_client(use_cookies=False).get("/slow", headers={"Cookie": "session=" + sid})
            slow["result"] = {"status": res.status_code, "body": res.get_data(as_text=True)}
        except Exception as e:  # reported to the test, not raised here
            slow["result"] = {"raised": "%s: %s" % (type(e).__name__, e)}

    slow["thread"] = threading.Thread(target=run)
    slow["thread"].start()
    if not reading.wait(10):
        raise RuntimeError("the slow request never loaded its session")
    return True


def slow_finish():
    release.set()
    slow["thread"].join(10)
    return slow.get("result")


serve({
    "login": lambda: request("/login"),
    "read": lambda: request("/read"),
    "logout": lambda: request("/logout"),
    "slow_start": slow_start,
    "slow_finish": slow_finish,
})
