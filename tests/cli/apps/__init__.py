"""WSGI apps for the CLI / master lifecycle tests (tests/cli)."""
