"""App for the master lifecycle tests.

Paths:
  ``/``            200, body ``ok <worker pid>``
  ``/slow?s=N``    writes ``slow request started (pid N)`` to stderr (so the test
                   can wait for the request to be in flight), sleeps N seconds
                   (default 1.5), then 200 ``slow done``
  ``/hang``        writes ``hang request started (pid N)`` and sleeps forever
                   without returning (the worker stops beating its heartbeat)
  ``/env?name=X``  200, the worker's os.environ[X], or ``-`` when unset

With $LIFECYCLE_IMPORT_DELAY set, importing this module takes that many
seconds (an app that boots slowly).  ``app`` is wrapped in
``wsgiref.validate.validator``.  ``nope`` is deliberately not defined:
``tests.cli.apps.lifecycle:nope`` is the "attribute missing" case.
"""

import os
import sys
import time
from urllib.parse import parse_qs
from wsgiref.validate import validator

# $LIFECYCLE_IMPORT_DELAY: seconds this import takes (a slow-booting app)
time.sleep(float(os.environ.get("LIFECYCLE_IMPORT_DELAY", "0")))


def _note(what):
    sys.stderr.write(f"{what} request started (pid {os.getpid()})\n")
    sys.stderr.flush()


def _app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/slow":
        qs = parse_qs(environ.get("QUERY_STRING", ""))
        seconds = float(qs.get("s", ["1.5"])[0])
        _note("slow")
        time.sleep(seconds)
        body = b"slow done"
    elif path == "/hang":
        _note("hang")
        while True:
            time.sleep(3600)
    elif path == "/env":
        name = parse_qs(environ.get("QUERY_STRING", ""))["name"][0]
        body = os.environ.get(name, "-").encode()
    else:
        body = b"ok %d" % os.getpid()
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
    )
    return [body]


app = validator(_app)
