"""Suite-wide pytest set-up.

- puts the repository root on ``sys.path`` so ``tests.support`` and
  ``tests.apps`` import the same way in pytest and in the server process;
- fixtures:
  ``server_factory``  call it like :class:`tests.support.server.Server`
                      (``server_factory(app, *args, env=..., workers=...)``); the
                      server is started now and stopped at test teardown;
  ``suite_server``    one session-wide server (``tests.apps.suite:app``, 2 sync
                      workers) shared by the black-box tests that need no
                      special flags;
- a default per-test timeout (pytest-timeout) for tests/blackbox, tests/http and
  tests/cli, scaled by CUNICORN_TEST_TIMEOUT_SCALE like explicit timeout marks.
"""

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.support.server import Server  # noqa: E402

# Seconds per test in blackbox/, http/ and cli/ (a server or master that never
# answers or exits must fail the test, not stall the suite).
# CUNICORN_TEST_TIMEOUT_SCALE stretches it, and every explicit
# @pytest.mark.timeout, for slow builds (make sanitize sets 4: ASan makes every
# request slower).
TIMEOUT_SCALE = float(os.environ.get("CUNICORN_TEST_TIMEOUT_SCALE", "1"))
DEFAULT_TIMEOUT = 60
_DEFAULT_TIMEOUT_DIRS = ("/tests/blackbox/", "/tests/http/", "/tests/cli/")


def pytest_collection_modifyitems(config, items):
    if not config.pluginmanager.hasplugin("timeout"):
        return
    for item in items:
        mark = item.get_closest_marker("timeout")
        if mark is None:
            if any(d in str(item.fspath) for d in _DEFAULT_TIMEOUT_DIRS):
                item.add_marker(pytest.mark.timeout(DEFAULT_TIMEOUT * TIMEOUT_SCALE))
        elif TIMEOUT_SCALE != 1 and mark.args:
            scaled = pytest.mark.timeout(mark.args[0] * TIMEOUT_SCALE, **mark.kwargs)
            item.add_marker(scaled, append=False)  # the closest mark wins


@pytest.fixture
def server_factory(tmp_path):
    started = []

    def make(app="tests.apps.echo:app", *args, **kw):
        kw.setdefault("log_dir", tmp_path / f"server{len(started)}")
        Path(kw["log_dir"]).mkdir(parents=True, exist_ok=True)
        srv = Server(app, *args, **kw)
        started.append(srv)
        return srv.start()

    yield make
    for srv in started:
        srv.stop()


@pytest.fixture(scope="session")
def suite_server(tmp_path_factory):
    srv = Server(
        "tests.apps.suite:app",
        "-w",
        "2",
        "--timeout",
        "30",
        log_dir=tmp_path_factory.mktemp("suite_server"),
    )
    srv.start()
    yield srv
    srv.stop()
