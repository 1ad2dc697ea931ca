"""A Flask app to try cunicorn with.

cunicorn -w 2 -b 127.0.0.1:8000 examples.flask_app:app

curl http://127.0.0.1:8000/
curl -d 'some bytes' http://127.0.0.1:8000/echo
"""

from flask import Flask, request

app = Flask(__name__)


@app.route("/")
def hello():
    return "Hello, World!\n"


@app.route("/echo", methods=["POST"])
def echo():
    """Send the request body back, with the request's Content-Type."""
    return (
        request.get_data(),
        200,
        {"Content-Type": request.content_type or "application/octet-stream"},
    )
