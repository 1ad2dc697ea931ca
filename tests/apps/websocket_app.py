"""Apps that take the connection over through ``environ["gunicorn.socket"]``,
as WebSocket libraries do on gunicorn.

``raw``: any path.  Answers ``101 Switching Protocols`` itself on the socket,
then echoes each line it reads until ``bye``, answers ``bye`` and ends with
StopIteration (gunicorn's "close the connection").  A request without the
socket (no Upgrade header) gets 200 ``no socket``.  With the socket,
``/big`` does not take it over: an ordinary 32 MiB response, in 64 KiB
pieces.

``flask_app``: Flask-Sock's echo at ``/ws`` (until the text ``bye``), and
``/hello`` for plain requests.
"""

import socket


def raw(environ, start_response):
    sock = environ.get("gunicorn.socket")
    if sock is None:
        start_response("200 OK", [("Content-Length", "9")])
        return [b"no socket"]
    assert isinstance(sock, socket.socket)
    if environ["PATH_INFO"] == "/big":
        start_response("200 OK", [("Content-Length", str(512 * 65536))])
        return (b"x" * 65536 for _ in range(512))
    sock.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: lines\r\n"
        b"Connection: Upgrade\r\n\r\n"
    )
    f = sock.makefile("rb")
    for line in f:
        sock.sendall(line)
        if line == b"bye\n":
            break
    f.close()
    raise StopIteration


def _flask_app():
    from flask import Flask
    from flask_sock import Sock

    app = Flask(__name__)
    sock = Sock(app)

    @sock.route("/ws")
    def echo(ws):
        while True:
            data = ws.receive()
            ws.send(data)
            if data == "bye":
                break

    @app.route("/hello")
    def hello():
        return "hello"

    return app


try:
    flask_app = _flask_app()
except ImportError:  # flask-sock is in the test extra
    flask_app = None
