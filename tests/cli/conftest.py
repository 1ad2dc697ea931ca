"""tests/cli: signals, exit codes and logs of the real ``cunicorn`` command.

Every test here gets a default time limit (pytest-timeout, when installed): a
master that never exits must fail the test, not stall the suite.
"""

import pytest

CLI_TEST_TIMEOUT = 60  # seconds


def pytest_collection_modifyitems(config, items):
    if not config.pluginmanager.hasplugin("timeout"):
        return
    for item in items:
        if "/tests/cli/" in str(item.fspath) and not any(item.iter_markers("timeout")):
            item.add_marker(pytest.mark.timeout(CLI_TEST_TIMEOUT))
