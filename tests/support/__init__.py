"""Shared test helpers (black-box server runner, HTTP response parser, corpus loader).

Import from anywhere in the suite as ``from tests.support.server import Server``;
``tests/conftest.py`` puts the repository root on ``sys.path``.
"""
