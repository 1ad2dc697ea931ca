"""The smallest WSGI app: no framework, just PEP 3333.

cunicorn -w 2 -b 127.0.0.1:8000 examples.hello:app
"""

BODY = b"Hello, World!\n"


def app(environ, start_response):
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))],
    )
    return [BODY]
