"""bench app "hello": plain WSGI, 200, ``Hello, World!`` with Content-Length.

Measures the server's own cost: the app does as little as a WSGI app can.
"""

BODY = b"Hello, World!"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def app(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
