"""bench app "flask": what users run; a Flask call alone costs about 32 us of CPU."""

from flask import Flask

app = Flask(__name__)


@app.route("/")
def hello():
    return "Hello, World!"
