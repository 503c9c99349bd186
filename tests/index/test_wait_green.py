"""The end of a load on a real Qdrant server waits for the collection to turn green with a
progress bar (``ServerIndex.optimize(progress=...)``): the bar is made once, ticked on
each look at the collection with the vectors indexed since the last, and the wait ends
green. The embedded engine shows its in-process build the same way."""

from __future__ import annotations

import json
import uuid

import numpy as np

from retrieval.encoders.base import VectorSpec, l2_normalize
from retrieval.index import IndexConfig, PointBatch, open_index, point_id


class Bars:
    """A ProgressFactory that keeps what it was asked to show."""

    def __init__(self) -> None:
        self.made: list[tuple[str, int | None]] = []
        self.ticks: list[int] = []

    def __call__(self, description: str, total: int | None):
        self.made.append((description, total))
        return self.ticks.append


def load(index, name: str, n: int = 3000) -> None:
    """n points of a 32-dim vector."""
    rng = np.random.default_rng(0)
    index.create(name, [VectorSpec("text", 32)], {"encoders": ["x"]})
    if hasattr(index, "prepare_load"):  # the server: the HNSW build held back
        index.prepare_load(name)
    for start in range(0, n, 500):
        ids = [point_id("ds", f"p{i}") for i in range(start, start + 500)]
        vecs = {"text": list(l2_normalize(rng.normal(size=(500, 32)).astype(np.float32)))}
        index.upsert(name, PointBatch(ids, vecs, [{"id": i} for i in ids]))


def test_the_server_wait_for_green_shows_progress_and_ends_green(qdrant_node):
    # a 1 KB threshold: every segment gets an HNSW graph, so there is a build to wait for
    index = open_index("server", url=qdrant_node.url, config=IndexConfig(indexing_threshold_kb=1))
    name = f"green-{uuid.uuid4().hex[:8]}"
    try:
        load(index, name)
        assert index.client.get_collection(name).config.optimizer_config.indexing_threshold == 0
        bars = Bars()
        index.optimize(name, progress=bars)
        info = index.client.get_collection(name)
        assert str(info.status.value) == "green"
        assert info.config.optimizer_config.indexing_threshold == 1  # the build switched on
        assert bars.made == [(f"waiting for {name!r} to turn green (HNSW build)", None)]
        assert bars.ticks and all(t >= 0 for t in bars.ticks)  # one per look, never back
        assert 0 < sum(bars.ticks) <= 3000  # the indexed vectors, at most one per point
        assert index.info(name).points == 3000
    finally:
        index.drop(name)
        index.close()


def test_index_dataset_hands_the_wait_to_its_bar(qdrant_node, tmp_path):
    from search.config import load_config
    from search.indexing import index_dataset

    rows = [{"id": f"p{i}", "title": f"nike air zoom {i}"} for i in range(40)]
    data = tmp_path / "shop.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    store = {"backend": "server", "url": qdrant_node.url}
    cfg = load_config(None, store=store, stage1={"encoders": ["sparse"]})
    name = f"shop-{uuid.uuid4().hex[:8]}"
    bars, batches = Bars(), []
    report, _ = index_dataset(
        cfg, str(data), collection=name, progress=lambda total: batches.append, wait_progress=bars
    )
    index = open_index("server", url=qdrant_node.url)
    try:
        assert report.written == 40 and sum(batches) == 40
        assert [d for d, _ in bars.made] == [f"waiting for {name!r} to turn green (HNSW build)"]
        assert bars.ticks and str(index.client.get_collection(name).status.value) == "green"
    finally:
        index.drop(name)
        index.close()


def test_the_embedded_build_shows_a_bar_too(tmp_path):
    index = open_index("edge", data_dir=tmp_path)
    try:
        load(index, "c", n=500)
        bars = Bars()
        index.optimize("c", progress=bars)
        assert bars.made == [("building the HNSW index of 'c'", None)] and bars.ticks == [1]
    finally:
        index.close()
