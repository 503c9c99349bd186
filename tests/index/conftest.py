"""Every back-end runs the same behaviour tests: edge (the engine in process), a real
Qdrant node and a real 3-peer cluster (2 shards, 2 replicas) started by tests/conftest.py."""

from __future__ import annotations

import uuid

import pytest

from retrieval.index import IndexConfig, open_index


@pytest.fixture(params=["edge", "server", "cluster"])
def index(request, tmp_path):
    if request.param == "edge":
        idx = open_index("edge", data_dir=tmp_path, config=IndexConfig())
    elif request.param == "server":
        node = request.getfixturevalue("qdrant_node")
        idx = open_index("server", url=node.url)
    else:
        cluster = request.getfixturevalue("qdrant_cluster")
        idx = open_index("server", url=cluster.url, config=IndexConfig(shards=2, replicas=2))
    idx.test_prefix = f"t{uuid.uuid4().hex[:8]}"  # server collections outlive the test
    yield idx
    if request.param != "edge":
        for name in idx.collections():
            if name.startswith(idx.test_prefix):
                idx.drop(name)
    idx.close()
