"""--max-requests: a worker is replaced after N requests and the server keeps
answering without dropping a request."""

from tests.support.server import build_request


def test_worker_replaced_after_max_requests(server_factory):
    srv = server_factory("tests.apps.suite:app", "-w", "1", "--max-requests", "3")
    first = srv.worker_pids()
    assert len(first) == 1
    pids = []
    for i in range(10):
        resp = srv.fetch(build_request("GET", "/_t/pid"), timeout=10)
        assert resp.status == 200, (i, resp.raw[:200], srv.log_tail())
        pids.append(int(resp.body))
    # 3 requests per worker: 10 requests need at least 4 distinct workers
    assert len(set(pids)) >= 4, pids
    assert pids[:3] == [first[0]] * 3, pids
    # each worker served at most 3 requests
    for p in set(pids):
        assert pids.count(p) <= 3, pids
    srv.wait_for_log(r"Booting worker with pid", count=4)
    assert srv.alive()
