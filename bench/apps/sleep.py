"""bench app "sleep": waiting on I/O (50 ms) without using CPU; measures concurrency."""

import time

BODY = b"Hello, World!"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def app(environ, start_response):
    time.sleep(0.05)
    start_response("200 OK", HEADERS)
    return [BODY]
