"""The ``cunicorn`` command: ``cunicorn [OPTIONS] [APP_MODULE]``."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence

from cunicorn.app import Application


def check_config(app: Application) -> None:
    """--check-config / --print-config, as gunicorn: print the resolved
    settings (--print-config), load the app, exit 0, or 1 with the traceback
    when the app does not load."""
    if app.cfg.print_config:
        print(app.cfg)
        sys.stdout.flush()
    try:
        app.wsgi()
    except Exception:
        print("\nError while loading the application:\n", file=sys.stderr)
        traceback.print_exc()
        sys.stderr.flush()
        sys.exit(1)
    sys.exit(0)


def main(argv: Sequence[str] | None = None, prog: str = "cunicorn") -> None:
    """Parse the command line, then serve until the master stops; exits the
    process with the master's code (2: bad option, 1: bad configuration,
    3: a worker failed to boot, 4: the app failed to load)."""
    from cunicorn.arbiter import Arbiter

    app = Application(argv, prog=prog)
    app.add_pythonpath()
    if app.cfg.print_config or app.cfg.check_config:
        check_config(app)
    try:
        code = Arbiter(app).run()
    except RuntimeError as e:
        # as gunicorn's BaseApplication.run: unusable address or log file
        print(f"\nError: {e}\n", file=sys.stderr)
        sys.stderr.flush()
        sys.exit(1)
    sys.exit(code)


if __name__ == "__main__":
    main()
