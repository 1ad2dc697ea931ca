"""The test harness itself: start failures are reported with the exit code and
the log, and stop() leaves no process behind."""

import os

import pytest

from tests.support.server import Server, ServerStartError, build_request


def test_unknown_flag_fails_fast_with_exit_2(tmp_path):
    srv = Server("tests.apps.echo:app", "--no-such-flag", log_dir=tmp_path)
    with pytest.raises(ServerStartError) as ei:
        srv.start()
    assert srv.proc.returncode == 2
    assert "no-such-flag" in str(ei.value)


def test_stop_reaps_master_and_workers(tmp_path):
    srv = Server("tests.apps.echo:app", "-w", "2", log_dir=tmp_path)
    with srv:
        assert len(srv.worker_pids()) == 2
        assert srv.fetch(build_request("GET", "/")).status == 200
        workers = srv.worker_pids()
    assert srv.proc.returncode == 0
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
