"""Issue 22, point 3: ``search index --ray`` builds the collection the single-process job
builds (same point count, payloads, vectors to 1e-5 for the deterministic encoders, same
report), on a real Qdrant server and a local Ray cluster; a re-run stores nothing twice.

Runs in ``make test``; skipped (with the reason) only where Ray is not installed."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="ray is not installed: pip install '.[distributed]'")
pytest.importorskip("ray.data", reason="Ray Data is not installed: pip install '.[distributed]'")

from typer.testing import CliRunner  # noqa: E402

from retrieval.data.synth import synthesize  # noqa: E402
from search.cli import app  # noqa: E402
from search.config import load_config  # noqa: E402
from search.indexing import index_dataset  # noqa: E402
from search.indexing_ray import index_dataset_ray  # noqa: E402

ENCODERS = ["sparse", "phash", "text"]  # deterministic on a CPU: sparse, pHash, packaged MiniLM


def all_points(client, name):
    """Every point of a collection: product id -> (payload, vectors)."""
    out, offset = {}, None
    for _ in range(1000):  # bounded: 1000 pages of 256
        points, offset = client.scroll(
            name, limit=256, offset=offset, with_payload=True, with_vectors=True
        )
        for p in points:
            out[p.payload["id"]] = (p.payload, p.vector)
        if offset is None:
            return out
    raise AssertionError("scroll did not end")


def same_vector(a, b) -> bool:
    if hasattr(a, "indices"):  # sparse: same terms, same weights
        return list(a.indices) == list(b.indices) and np.allclose(a.values, b.values, atol=1e-5)
    return np.allclose(np.asarray(a), np.asarray(b), atol=1e-5)


def test_ray_collection_equals_single_process(tmp_path, qdrant_node, ray_cluster):
    from qdrant_client import QdrantClient

    data = synthesize(tmp_path / "synth", groups=30, image_size=64, corrupt=2, missing=1)
    cfg = load_config(
        None,
        store={"data_dir": tmp_path / "home", "url": qdrant_node.url},
        stage1={"encoders": ENCODERS, "batch_size": 16},
    )
    tag = uuid.uuid4().hex[:8]
    single, distributed = f"single-{tag}", f"ray-{tag}"
    one, _ = index_dataset(cfg, str(data), collection=single)
    ticks: list[int] = []
    totals: list[int | None] = []

    def progress(total):
        totals.append(total)
        return ticks.append

    many, path = index_dataset_ray(
        cfg, str(data), collection=distributed, workers=2, progress=progress
    )
    client = QdrantClient(url=qdrant_node.url)
    try:
        assert path.name == f"{distributed}-index-report.json" and path.is_file()
        assert totals == [one.seen] and sum(ticks) == one.seen  # the bar saw every product
        assert (many.seen, many.written, many.skipped_existing) == (one.seen, one.seen, 0)
        assert many.failures == one.failures and len(many.failures) == 3  # 2 corrupt, 1 missing
        assert many.duplicates == one.duplicates
        assert client.count(distributed, exact=True).count == one.seen
        a, b = all_points(client, single), all_points(client, distributed)
        assert a.keys() == b.keys() and len(a) == one.seen
        for pid, (payload, vectors) in a.items():
            payload_b, vectors_b = b[pid]
            assert payload_b == payload, pid
            assert vectors_b.keys() == vectors.keys(), pid  # no image vector where unreadable
            for name in vectors:
                assert same_vector(vectors[name], vectors_b[name]), (pid, name)
        meta_a = client.get_collection(single).config.metadata
        meta_b = client.get_collection(distributed).config.metadata
        assert meta_a == meta_b  # same encoders, vectors, dataset and source

        # a re-run stores nothing twice and reports the same failures
        again, _ = index_dataset_ray(cfg, str(data), collection=distributed, workers=1)
        assert (again.written, again.skipped_existing) == (0, one.seen)
        assert again.failures == one.failures
        assert client.count(distributed, exact=True).count == one.seen
    finally:
        for name in (single, distributed):
            client.delete_collection(name)
        client.close()


def test_ray_needs_a_server_and_its_flags_need_ray(tmp_path, monkeypatch):
    monkeypatch.setenv("SEARCH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("QDRANT_URL", raising=False)
    data = synthesize(tmp_path / "synth", groups=2, image_size=32)
    res = CliRunner().invoke(app, ["index", str(data), "-e", "sparse", "--ray"])
    assert res.exit_code == 2
    assert "--ray writes from the workers to a Qdrant server: pass --qdrant-url" in res.output
    assert "Traceback" not in res.output
    res = CliRunner().invoke(app, ["index", str(data), "-e", "sparse", "--workers", "2"])
    assert res.exit_code == 2 and "--workers and --gpus-per-worker need --ray" in res.output


def test_gpus_the_cluster_lacks_are_one_line(tmp_path, qdrant_node, ray_cluster):
    """A pool that cannot be placed would wait for ever: refused before any work."""
    from retrieval.errors import UsageError

    data = synthesize(tmp_path / "synth", groups=2, image_size=32)
    cfg = load_config(
        None,
        store={"data_dir": tmp_path / "home", "url": qdrant_node.url},
        stage1={"encoders": ["sparse"]},
    )
    with pytest.raises(UsageError, match=r"needs 2 GPUs; the Ray cluster has 0"):
        index_dataset_ray(cfg, str(data), collection="no-gpus", workers=2, gpus_per_worker=1)


class NotConnected:
    """Stands in for the ``ray`` module before ``ray.init`` (these addresses are refused
    before Ray is asked anything)."""

    @staticmethod
    def is_initialized() -> bool:
        return False


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("ray://head:10001", "Ray Client addresses (ray://) are not supported"),
        ("head-without-port", "bad Ray address 'head-without-port'"),
    ],
)
def test_addresses_ray_cannot_use_are_one_line(address, message):
    from retrieval.errors import UsageError
    from search.ray_cluster import connect_ray

    with pytest.raises(UsageError) as err:
        connect_ray(NotConnected(), address)
    assert message in str(err.value) and "\n" not in str(err.value)
