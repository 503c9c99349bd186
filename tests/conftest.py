"""Shared fixtures: no network, a private SEARCH_HOME per test, and the real Abt-Buy set
indexed once per session for the acceptance tests."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _search_home(tmp_path, monkeypatch):
    monkeypatch.setenv("SEARCH_HOME", str(tmp_path / "search-home"))
    monkeypatch.delenv("QDRANT_URL", raising=False)
    monkeypatch.delenv("QDRANT_API_KEY", raising=False)


def shared_dataset(name: str) -> Path | None:
    """The shared real data set ``name``: ``$SEARCH_SHARED_DATA/NAME``, else
    ``shared/data/NAME`` beside this checkout or any folder above it (a git worktree
    may sit deeper than the main checkout); None when it is not there."""
    env = os.environ.get("SEARCH_SHARED_DATA")
    roots = [Path(env)] if env else [p / "shared" / "data" for p in Path(__file__).parents]
    return next((root / name for root in roots if (root / name).is_dir()), None)


@dataclass(frozen=True)
class IndexedSet:
    """A real data set indexed once for the session: where it lives and its collection."""

    path: Path
    data_dir: Path
    collection: str
    encoders: tuple[str, ...]


@pytest.fixture(scope="session")
def abt_buy_indexed(tmp_path_factory) -> IndexedSet:
    """The Abt-Buy gallery indexed once per session on the embedded back-end with the
    packaged MiniLM (``text``) and the lexical ``sparse`` encoder. The acceptance tests
    of retrieval and of ``search eval`` read it (open it, search, close it again: the
    embedded index holds one process per shard); none of them writes to it."""
    path = shared_dataset("abt-buy")
    if path is None:
        pytest.skip("shared abt-buy set not present")
    pytest.importorskip("sentence_transformers")
    from retrieval.data import open_dataset
    from retrieval.index import open_index
    from retrieval.retriever import Retriever

    dataset = open_dataset(str(path))
    data_dir = tmp_path_factory.mktemp("abt-buy-store")
    encoders = ("text", "sparse")
    index = open_index("edge", data_dir=data_dir)
    try:
        retriever = Retriever.from_specs(list(encoders), index, dataset.name)
        report = retriever.index_dataset(dataset.products(), dataset.name)
    finally:
        index.close()
    assert not report.failures, report.failures
    return IndexedSet(path, data_dir, dataset.name, encoders)


# -- real Qdrant engines (tests/qdrant_server.py) ---------------------------------------
def _need_qdrant() -> None:
    from qdrant_server import missing_reason

    reason = missing_reason()
    if reason is None:
        return
    if os.environ.get("CI"):  # CI must run the server tests, never skip them
        pytest.fail(f"CI has no Qdrant server to test against: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def qdrant_node(tmp_path_factory):
    """One real Qdrant node on loopback for the whole session (tests use their own
    collection names and drop them)."""
    _need_qdrant()
    from qdrant_server import QdrantNode

    node = QdrantNode(tmp_path_factory.mktemp("qdrant-node")).start()
    yield node
    node.stop()


@pytest.fixture(scope="session")
def qdrant_cluster(tmp_path_factory):
    """A real 3-peer Qdrant cluster on loopback for the whole session."""
    _need_qdrant()
    from qdrant_server import QdrantCluster

    cluster = QdrantCluster.start(tmp_path_factory.mktemp("qdrant-cluster"), size=3)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray cluster per test module (2 CPUs, no dashboard): its GCS address."""
    import logging

    ray = pytest.importorskip("ray")
    ray.init(
        num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING
    )
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
