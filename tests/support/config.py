"""Helpers for the configuration unit tests: build the Config a command line
gives (APP_MODULE ``x:app`` appended), or the exit it ends in."""

import pytest
from cunicorn.app import Application


def load(argv):
    """The configuration for argv with APP_MODULE 'x:app' appended."""
    return Application([*argv, "x:app"]).cfg


def load_exit(argv, capsys):
    """Load argv, which must exit: (exit code, what went to stderr)."""
    with pytest.raises(SystemExit) as exc:
        load(argv)
    return exc.value.code, capsys.readouterr().err
