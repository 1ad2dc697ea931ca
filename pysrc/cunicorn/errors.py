"""Exceptions shared by the configuration, the app loader and the arbiter."""


class ConfigError(Exception):
    """The configuration cannot be served (printed as ``Error: ...``, exit 1)."""


class AppImportError(Exception):
    """The app module was imported but the app object is wrong (exit 4)."""


# Exit codes between a worker and the master, as gunicorn's arbiter uses them.
WORKER_BOOT_ERROR = 3
APP_LOAD_ERROR = 4
