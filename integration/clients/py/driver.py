"""Runs a client's steps as the Go test asks for them, one at a time.

The test writes one JSON line per step, {"step": name, "args": [...]}; the
script runs it with its client and answers one JSON line, {"result": ...},
so that the test can check Redis directly before the next step. A step that
raises ends the script: the traceback goes to stderr and it exits 1.
"""

import json
import os
import sys
import traceback


def serve(steps):
    for line in sys.stdin:
        req = json.loads(line)
        try:
            result = steps[req["step"]](*req.get("args", []))
        except Exception:  # anything unexpected fails the Go test with its traceback
            sys.stderr.write("step %s %r:\n%s" % (req["step"], req.get("args"), traceback.format_exc()))
            sys.exit(1)
        sys.stdout.write(json.dumps({"result": result}) + "\n")
        sys.stdout.flush()


def proxy_address():
    """The proxy's host and port, from SESSPROXY_ADDR (host:port)."""
    host, port = os.environ["SESSPROXY_ADDR"].rsplit(":", 1)
    return host, int(port)
