"""cunicorn: a drop-in replacement for gunicorn with its engine in C."""

version_info = (0, 1, 0)
__version__ = ".".join(str(v) for v in version_info)
SERVER = "cunicorn"
SERVER_SOFTWARE = f"{SERVER}/{__version__}"
