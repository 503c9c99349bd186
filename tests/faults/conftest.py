"""Fixtures of the fault suite: the hostile catalogue of ``helpers.viewer`` indexed and
served by a real viewer on 127.0.0.1."""

from __future__ import annotations

import threading

import pytest
from helpers.viewer import hostile_catalog
from typer.testing import CliRunner

from search.cli import app
from search.config import load_config
from search.web import server as web_server


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A viewer over the hostile catalogue's collection: (host, port, tmp root)."""
    root = tmp_path_factory.mktemp("site")
    home = root / "home"
    mp = pytest.MonkeyPatch()
    mp.setenv("SEARCH_HOME", str(home))
    catalog = hostile_catalog(root)
    res = CliRunner().invoke(app, ["index", str(catalog), "-e", "sparse", "-c", "shop"])
    assert res.exit_code == 0, res.output
    # a request must arrive whole within 1 s: idle and slow sockets are dropped after it
    server = web_server.serve(load_config(None), root / "runs", port=0, request_timeout=1.0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "127.0.0.1", server.server_address[1], root
    server.shutdown()
    server.server_close()
    mp.undo()
