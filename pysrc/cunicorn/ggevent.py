"""Python glue of the gevent worker (``-k gevent``, alias ``coroutine``).

The worker loop is C (``_cserver.run_worker_gevent``): one greenlet per
connection on gevent's hub.  This module only does what gunicorn's GeventWorker
does in Python before its loop: check that gevent and greenlet are there
(``missing``, from Config.validate), monkey-patch the standard library (unless
the app or the config file already did; ``patch``, before the app is loaded)
and reinitialize the hub after fork.
"""

from __future__ import annotations

from typing import Any

MISSING = (
    "the gevent worker needs gevent and greenlet: "
    "pip install 'cunicorn[gevent]' (or: pip install gevent greenlet)"
)


def missing() -> str | None:
    """One line saying what is missing for the gevent worker, or None."""
    try:
        import gevent  # noqa: F401
        import greenlet  # noqa: F401
    except ImportError:
        return MISSING
    from cunicorn import _cserver

    if not hasattr(_cserver, "run_worker_gevent"):
        return (
            "this build of cunicorn has no gevent worker (greenlet was not "
            "installed when it was compiled): reinstall it with greenlet present"
        )
    return None


def patch() -> None:
    """Monkey-patch the standard library as gunicorn's gevent worker does, unless
    it is patched already (a config file that calls patch_all() itself).  A no-op
    without gevent (Config.validate reports that)."""
    try:
        from gevent import monkey
    except ImportError:
        return

    if not monkey.is_module_patched("socket"):
        monkey.patch_all()


def run_worker(
    arbiter: Any, cs: Any, app: Any, listeners: Any, base: dict, kwargs: dict
) -> int:
    """Run the gevent worker loop in a forked worker (patched already by
    ``patch``, and gevent checked by Config.validate); return its exit code."""
    import gevent

    gevent.reinit()  # the hub's loop after fork, as gunicorn does
    return cs.run_worker_gevent(
        app,
        listeners,
        base,
        worker_connections=arbiter.cfg.worker_connections,
        **kwargs,
    )
