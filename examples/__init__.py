"""Example WSGI apps, importable from the repository root as ``examples.<name>:app``."""
