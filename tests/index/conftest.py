"""Every back-end runs the same behaviour tests: edge, the qdrant-client local mode,
and (marked integration) a real server at QDRANT_URL."""

from __future__ import annotations

import os
import uuid

import pytest

from retrieval.index import IndexConfig, open_index

SERVER_URL = os.environ.get("QDRANT_URL")


@pytest.fixture(
    params=[
        "edge",
        "memory",
        pytest.param("server", marks=[pytest.mark.integration]),
    ]
)
def index(request, tmp_path):
    if request.param == "edge":
        idx = open_index("edge", data_dir=tmp_path, config=IndexConfig())
    elif request.param == "memory":
        idx = open_index("server", url=":memory:")
    else:
        if not SERVER_URL:
            pytest.skip("QDRANT_URL not set")
        idx = open_index("server", url=SERVER_URL)
    idx.test_prefix = f"t{uuid.uuid4().hex[:8]}"  # server collections outlive the test
    yield idx
    if request.param == "server":
        for name in idx.collections():
            if name.startswith(idx.test_prefix):
                idx.drop(name)
    idx.close()
