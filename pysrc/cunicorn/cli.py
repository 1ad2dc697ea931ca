"""The ``cunicorn`` command: ``cunicorn [OPTIONS] [APP_MODULE]``."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from cunicorn.app import Application


def main(argv: Sequence[str] | None = None, prog: str = "cunicorn") -> None:
    """Parse the command line, then serve until the master stops; exits the
    process with the master's code (2: bad option, 1: bad configuration,
    3: a worker failed to boot, 4: the app failed to load)."""
    from cunicorn.arbiter import Arbiter

    app = Application(argv, prog=prog)
    app.add_pythonpath()
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
