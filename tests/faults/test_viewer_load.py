"""Issue 23's load test: 200 idle and 50 slow-header clients hold connections to a real
viewer (uvicorn on 127.0.0.1) while 20 normal requests come in; every one is answered.
The p50 latency is reported (logged and printed with ``-s``), never asserted: the
machine is shared. Bounded: fixed counts, socket timeouts, one overall bound."""

from __future__ import annotations

import logging
import statistics
import time

from helpers.viewer import SlowClients, open_sockets, query, request, running

from search.config import load_config
from search.web.server import serve

log = logging.getLogger(__name__)
IDLE, SLOW, NORMAL = 200, 50, 20


def wait_for_connections(server, n: int, timeout: float = 20) -> int:
    """How many connections the server holds, once it holds ``n`` (or the time is up)."""
    end = time.monotonic() + timeout
    while len(server.uvicorn.server_state.connections) < n and time.monotonic() < end:
        time.sleep(0.1)
    return len(server.uvicorn.server_state.connections)


def test_normal_requests_are_answered_beside_idle_and_slow_clients(site, monkeypatch):
    _, _, root = site  # the hostile catalogue's collection "shop", indexed once
    monkeypatch.setenv("SEARCH_HOME", str(root / "home"))
    server = serve(load_config(None), root / "runs", port=0, request_timeout=60)
    with running(server) as (host, port):
        idle = open_sockets(host, port, IDLE)
        slow = SlowClients(host, port, SLOW, interval=0.5, limit=60)
        try:
            held = wait_for_connections(server, IDLE + SLOW)
            assert held >= IDLE + SLOW, held
            latencies, statuses = [], []
            start = time.monotonic()
            for i in range(NORMAL):
                t0 = time.perf_counter()
                if i % 2:
                    status, _ = query(
                        (host, port), {"text": "red running shoe", "collection": "shop", "n": 3}
                    )
                else:
                    status = request((host, port), "GET", "/api/collections", timeout=30)[0]
                latencies.append(time.perf_counter() - t0)
                statuses.append(status)
            elapsed = time.monotonic() - start
            still = len(server.uvicorn.server_state.connections)
        finally:
            slow.close()
            for sock in idle:
                sock.close()
    p50 = statistics.median(latencies) * 1000
    message = (
        f"viewer load: {NORMAL} requests beside {IDLE} idle + {SLOW} slow-header clients "
        f"({still} connections open after): p50 {p50:.1f} ms, max {max(latencies) * 1000:.1f} ms"
    )
    log.warning(message)
    print(message)
    assert statuses == [200] * NORMAL
    assert elapsed < 30, f"{NORMAL} requests took {elapsed:.1f} s"  # a generous bound
